// Package helm_test renders the chart in ./settle with the helm pinned in
// tools/go.mod (go tool -modfile=tools/go.mod helm, built once) and checks
// the manifests: what issue 17 asks of the deployment, and that the chart
// only uses flags the coordinator has (docs/configuration.md, which
// cmd/coordinator's TestConfigurationReference keeps current) and alerts
// docs/operations.md has a runbook for.
package helm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// root is the repository root, where helm runs (go tool needs tools/go.mod
// relative to it).
var root = func() string {
	abs, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return abs
}()

const (
	chart     = "deploy/helm/settle"
	release   = "settle"
	namespace = "payments"
	// The helm built by go tool has no Kubernetes version linked in (it
	// reports v1.20); the chart needs 1.30 (native preStop sleep).
	kubeVersion = "1.30.0"
)

type obj = map[string]any

// helmBin is the helm that `go tool -modfile=tools/go.mod helm` runs,
// built (or found in the build cache) once: `go tool` itself spends about
// a second per call checking that it is up to date.
var helmBin string

func TestMain(m *testing.M) {
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "-n", "helm")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go tool -modfile=tools/go.mod -n helm:", err)
		os.Exit(1)
	}
	helmBin = strings.TrimSpace(string(out))
	os.Exit(m.Run())
}

// render runs helm template with extra arguments; it returns the objects
// by "Kind/name", or helm's error output.
func render(t *testing.T, args ...string) (map[string]obj, error) {
	t.Helper()
	cmdArgs := append([]string{"template", release, chart,
		"--namespace", namespace, "--kube-version", kubeVersion}, args...)
	cmd := exec.Command(helmBin, cmdArgs...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %v: %v: %s", args, err, stderr.String())
	}
	t.Logf("helm template %v: %v", args, time.Since(start).Round(time.Millisecond))
	objs := map[string]obj{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(stdout.String(), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		var o obj
		if err := json.Unmarshal(js, &o); err != nil {
			t.Fatal(err)
		}
		key := str(o, "kind") + "/" + str(o, "metadata", "name")
		if _, dup := objs[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		objs[key] = o
	}
	return objs, nil
}

func mustRender(t *testing.T, args ...string) map[string]obj {
	t.Helper()
	objs, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func production(t *testing.T) map[string]obj {
	return mustRender(t, "-f", chart+"/values-production.yaml")
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// get walks maps by key and lists by index ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func num(v any, path ...string) float64 {
	f, _ := get(v, path...).(float64)
	return f
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func need(t *testing.T, objs map[string]obj, key string) obj {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		keys := make([]string, 0, len(objs))
		for k := range objs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("%s not rendered; have %v", key, keys)
	}
	return o
}

func container(t *testing.T, podOwner obj, name string) obj {
	t.Helper()
	for _, c := range list(podOwner, "spec", "template", "spec", "containers") {
		if str(c, "name") == name {
			return c.(obj)
		}
	}
	t.Fatalf("no container %q in %s", name, str(podOwner, "metadata", "name"))
	return nil
}

// envOf returns the container's environment: literal values, and
// "secret:NAME/KEY" or "field:PATH" for references.
func envOf(t *testing.T, c obj) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range list(c, "env") {
		name := str(e, "name")
		if _, dup := env[name]; dup {
			t.Fatalf("env %s set twice", name)
		}
		switch {
		case get(e, "valueFrom", "secretKeyRef") != nil:
			env[name] = "secret:" + str(e, "valueFrom", "secretKeyRef", "name") + "/" + str(e, "valueFrom", "secretKeyRef", "key")
		case get(e, "valueFrom", "fieldRef") != nil:
			env[name] = "field:" + str(e, "valueFrom", "fieldRef", "fieldPath")
		default:
			env[name] = str(e, "value")
		}
	}
	return env
}

var coordinatorKey = "Deployment/" + release

// TestReplicasOnMySQLFromSecrets: three replicas; the DSN comes from a
// Secret by reference, as do the tokens (a mounted Secret); the chart
// renders no Secret or ConfigMap and no literal DSN.
func TestReplicasOnMySQLFromSecrets(t *testing.T) {
	t.Parallel()
	for name, objs := range map[string]map[string]obj{"default": mustRender(t), "production": production(t)} {
		d := need(t, objs, coordinatorKey)
		if got := num(d, "spec", "replicas"); got != 3 {
			t.Errorf("%s: replicas %v, want 3", name, got)
		}
		env := envOf(t, container(t, d, "coordinator"))
		if !strings.HasPrefix(env["SETTLE_DB"], "secret:settle-db") {
			t.Errorf("%s: SETTLE_DB = %q, want a secretKeyRef", name, env["SETTLE_DB"])
		}
		if env["SETTLE_AUTH_TOKEN_FILE"] != "/etc/settle/tokens/tokens.csv" {
			t.Errorf("%s: SETTLE_AUTH_TOKEN_FILE = %q", name, env["SETTLE_AUTH_TOKEN_FILE"])
		}
		if !hasSecretVolume(d, "settle-tokens", "/etc/settle/tokens") {
			t.Errorf("%s: token Secret settle-tokens not mounted at /etc/settle/tokens", name)
		}
		for key, o := range objs {
			if k := str(o, "kind"); k == "Secret" || k == "ConfigMap" {
				t.Errorf("%s: chart renders %s: Secrets must be referenced by name, never inlined", name, key)
			}
			js, _ := json.Marshal(o)
			if bytes.Contains(js, []byte("mysql:")) && !bytes.Contains(js, []byte("secretKeyRef")) {
				t.Errorf("%s: %s holds a literal mysql: DSN", name, key)
			}
		}
		for k, v := range env {
			if strings.Contains(v, "@tcp(") {
				t.Errorf("%s: %s holds a literal DSN", name, k)
			}
		}
	}
}

func hasSecretVolume(d obj, secret, mountPath string) bool {
	vol := ""
	for _, v := range list(d, "spec", "template", "spec", "volumes") {
		if str(v, "secret", "secretName") == secret {
			vol = str(v, "name")
		}
	}
	if vol == "" {
		return false
	}
	for _, c := range list(d, "spec", "template", "spec", "containers") {
		for _, m := range list(c, "volumeMounts") {
			if str(m, "name") == vol && str(m, "mountPath") == mountPath && get(m, "readOnly") == true {
				return true
			}
		}
	}
	return false
}

// TestListensOnAllInterfacesWithAuth: the pod listens on 0.0.0.0 (gRPC
// 7400, HTTP 7401) with authentication on and -insecure-no-auth false, and
// keeps the default instance id.
func TestListensOnAllInterfacesWithAuth(t *testing.T) {
	t.Parallel()
	env := envOf(t, container(t, need(t, mustRender(t), coordinatorKey), "coordinator"))
	for k, want := range map[string]string{
		"SETTLE_LISTEN":           "0.0.0.0:7400",
		"SETTLE_HTTP_LISTEN":      "0.0.0.0:7401",
		"SETTLE_INSECURE_NO_AUTH": "false",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	// The default instance id (hostname-pid-random) is unique per process,
	// a container restart included; the pod name alone would not be.
	if v, ok := env["SETTLE_INSTANCE_ID"]; ok {
		t.Errorf("SETTLE_INSTANCE_ID = %q set: leave the unique default", v)
	}
}

// TestAuthenticationRequired: without a token Secret or mutual-TLS
// identities the chart refuses to render, naming the values to set;
// insecureNoAuth: true renders with -insecure-no-auth and no tokens.
func TestAuthenticationRequired(t *testing.T) {
	t.Parallel()
	_, err := render(t, "--set", "auth.tokenSecret=")
	if err == nil || !strings.Contains(err.Error(), "authentication is required: set auth.tokenSecret") ||
		!strings.Contains(err.Error(), "insecureNoAuth: true") {
		t.Fatalf("no token Secret: err = %v, want the authentication message", err)
	}
	_, err = render(t, "--set", "auth.tokenSecret=", "--set", "auth.mtlsIdentities=orders=initiator")
	if err == nil || !strings.Contains(err.Error(), "auth.mtlsIdentities needs mutual TLS") {
		t.Fatalf("identities without mutual TLS: err = %v", err)
	}
	_, err = render(t, "--set", "insecureNoAuth=yes")
	if err == nil || !strings.Contains(err.Error(), "insecureNoAuth must be true or false") {
		t.Fatalf("insecureNoAuth=yes: err = %v", err)
	}
	d := need(t, mustRender(t, "--set", "auth.tokenSecret=", "--set", "insecureNoAuth=true"), coordinatorKey)
	env := envOf(t, container(t, d, "coordinator"))
	if env["SETTLE_INSECURE_NO_AUTH"] != "true" {
		t.Errorf("SETTLE_INSECURE_NO_AUTH = %q, want true", env["SETTLE_INSECURE_NO_AUTH"])
	}
	if _, ok := env["SETTLE_AUTH_TOKEN_FILE"]; ok {
		t.Error("SETTLE_AUTH_TOKEN_FILE set without a token Secret")
	}
	// Mutual-TLS identities alone are enough.
	mustRender(t, "--set", "auth.tokenSecret=", "--set", "auth.mtlsIdentities=orders=initiator",
		"--set", "tls.enabled=true", "--set", "tls.secretName=tls", "--set", "tls.clientCASecret=ca")
}

// TestDatabaseSecretRequired: no DSN Secret, no rendering.
func TestDatabaseSecretRequired(t *testing.T) {
	t.Parallel()
	_, err := render(t, "--set", "database.existingSecret=")
	if err == nil || !strings.Contains(err.Error(), "database.existingSecret is required") {
		t.Fatalf("err = %v", err)
	}
}

// TestMigrationBeforeRollout: `coordinator migrate` runs as a
// pre-install/pre-upgrade hook Job with the same image, the DSN from a
// Secret (the migration user's in production) and the same lockdown.
func TestMigrationBeforeRollout(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		objs   map[string]obj
		secret string
	}{
		"default":    {mustRender(t), "secret:settle-db/dsn"},
		"production": {production(t), "secret:settle-db-migrate/dsn"},
	} {
		j := need(t, c.objs, "Job/"+release+"-migrate")
		if got := str(j, "metadata", "annotations", "helm.sh/hook"); got != "pre-install,pre-upgrade" {
			t.Errorf("%s: helm.sh/hook %q", name, got)
		}
		mc := container(t, j, "migrate")
		if args := list(mc, "args"); len(args) != 1 || args[0] != "migrate" {
			t.Errorf("%s: migrate args %v", name, args)
		}
		if got := envOf(t, mc)["SETTLE_DB"]; got != c.secret {
			t.Errorf("%s: migrate SETTLE_DB %q, want %q", name, got, c.secret)
		}
		if str(mc, "image") != str(container(t, need(t, c.objs, coordinatorKey), "coordinator"), "image") {
			t.Errorf("%s: migrate Job image differs from the coordinator's", name)
		}
		if str(j, "spec", "template", "spec", "restartPolicy") != "Never" {
			t.Errorf("%s: restartPolicy", name)
		}
		checkLockedDown(t, name+" migrate", j, mc)
	}
	if _, ok := mustRender(t, "--set", "migration.enabled=false")["Job/"+release+"-migrate"]; ok {
		t.Error("migration.enabled=false still renders the Job")
	}
}

// TestGRPCProbes: readiness, liveness and startup probes are native gRPC
// probes on 7400; with TLS, HTTPS /healthz; with mutual TLS, TCP (the
// kubelet has no client certificate).
func TestGRPCProbes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		objs  map[string]obj
		check func(p any) bool
	}{
		{"default", mustRender(t), func(p any) bool { return num(p, "grpc", "port") == 7400 }},
		{"tls", mustRender(t, "--set", "tls.enabled=true", "--set", "tls.secretName=tls"), func(p any) bool {
			return str(p, "httpGet", "scheme") == "HTTPS" && str(p, "httpGet", "path") == "/healthz" && str(p, "httpGet", "port") == "http"
		}},
		{"production (mutual TLS)", production(t), func(p any) bool { return str(p, "tcpSocket", "port") == "grpc" }},
	}
	for _, c := range cases {
		co := container(t, need(t, c.objs, coordinatorKey), "coordinator")
		for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
			if p := get(co, probe); p == nil || !c.check(p) {
				t.Errorf("%s: %s = %v", c.name, probe, p)
			}
		}
	}
}

// TestPodDisruptionBudget: at most one replica down by eviction, selecting
// exactly the coordinator's pods.
func TestPodDisruptionBudget(t *testing.T) {
	t.Parallel()
	objs := mustRender(t)
	pdb := need(t, objs, "PodDisruptionBudget/"+release)
	if num(pdb, "spec", "maxUnavailable") != 1 {
		t.Errorf("maxUnavailable %v", get(pdb, "spec", "maxUnavailable"))
	}
	podLabels := get(need(t, objs, coordinatorKey), "spec", "template", "metadata", "labels").(obj)
	if !selects(get(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PDB selector does not select the coordinator pods")
	}
	jobPod := get(need(t, objs, "Job/"+release+"-migrate"), "spec", "template", "metadata", "labels").(obj)
	if selects(get(pdb, "spec", "selector", "matchLabels"), jobPod) {
		t.Error("PDB selector counts the migration Job's pod")
	}
}

func selects(selector any, labels obj) bool {
	m, ok := selector.(obj)
	if !ok || len(m) == 0 {
		return false
	}
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestServices: a gRPC Service on 7400 and an HTTP Service on 7401 (plus
// a headless one for dns:/// balancing), all selecting the coordinator's
// pods through named container ports.
func TestServices(t *testing.T) {
	t.Parallel()
	objs := mustRender(t)
	d := need(t, objs, coordinatorKey)
	podLabels := get(d, "spec", "template", "metadata", "labels").(obj)
	ports := map[string]float64{}
	for _, p := range list(container(t, d, "coordinator"), "ports") {
		ports[str(p, "name")] = num(p, "containerPort")
	}
	if ports["grpc"] != 7400 || ports["http"] != 7401 {
		t.Fatalf("container ports %v", ports)
	}
	for name, want := range map[string]struct {
		port     string
		number   float64
		headless bool
	}{
		release + "-grpc":     {"grpc", 7400, false},
		release + "-http":     {"http", 7401, false},
		release + "-headless": {"grpc", 7400, true},
	} {
		s := need(t, objs, "Service/"+name)
		if !selects(get(s, "spec", "selector"), podLabels) {
			t.Errorf("%s does not select the coordinator pods", name)
		}
		p := get(s, "spec", "ports", "0")
		if num(p, "port") != want.number || str(p, "targetPort") != want.port {
			t.Errorf("%s port %v", name, p)
		}
		if (str(s, "spec", "clusterIP") == "None") != want.headless {
			t.Errorf("%s clusterIP %q", name, str(s, "spec", "clusterIP"))
		}
	}
}

// TestResources: requests and a memory limit on the coordinator.
func TestResources(t *testing.T) {
	t.Parallel()
	for name, objs := range map[string]map[string]obj{"default": mustRender(t), "production": production(t)} {
		c := container(t, need(t, objs, coordinatorKey), "coordinator")
		if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "requests", "memory") == "" ||
			str(c, "resources", "limits", "memory") == "" {
			t.Errorf("%s: resources %v", name, get(c, "resources"))
		}
	}
}

// TestSecurityContext: non-root (65532), read-only root filesystem, no
// privilege escalation, every capability dropped, RuntimeDefault seccomp,
// no service account token.
func TestSecurityContext(t *testing.T) {
	t.Parallel()
	for name, objs := range map[string]map[string]obj{"default": mustRender(t), "production": production(t)} {
		d := need(t, objs, coordinatorKey)
		checkLockedDown(t, name, d, container(t, d, "coordinator"))
	}
}

func checkLockedDown(t *testing.T, name string, owner, c obj) {
	t.Helper()
	pod := get(owner, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true || num(pod, "securityContext", "runAsUser") == 0 ||
		str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: pod securityContext %v", name, get(pod, "securityContext"))
	}
	if get(pod, "automountServiceAccountToken") != false {
		t.Errorf("%s: service account token mounted", name)
	}
	sc := get(c, "securityContext")
	if get(sc, "runAsNonRoot") != true || num(sc, "runAsUser") != 65532 ||
		get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false ||
		get(sc, "privileged") != false || str(sc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: container securityContext %v", name, sc)
	}
	if drop := list(sc, "capabilities", "drop"); len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("%s: capabilities.drop %v, want [ALL]", name, drop)
	}
	if add := list(sc, "capabilities", "add"); len(add) > 0 {
		t.Errorf("%s: capabilities.add %v", name, add)
	}
}

// TestGracefulTermination: terminationGracePeriodSeconds exceeds
// -shutdown-timeout plus the preStop pause; a chart set otherwise does not
// render.
func TestGracefulTermination(t *testing.T) {
	t.Parallel()
	for name, objs := range map[string]map[string]obj{"default": mustRender(t), "production": production(t)} {
		d := need(t, objs, coordinatorKey)
		c := container(t, d, "coordinator")
		shutdown, err := time.ParseDuration(envOf(t, c)["SETTLE_SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Fatalf("%s: SETTLE_SHUTDOWN_TIMEOUT: %v", name, err)
		}
		sleep := time.Duration(num(c, "lifecycle", "preStop", "sleep", "seconds")) * time.Second
		grace := time.Duration(num(d, "spec", "template", "spec", "terminationGracePeriodSeconds")) * time.Second
		if grace <= shutdown+sleep {
			t.Errorf("%s: grace period %v <= shutdown timeout %v + preStop %v", name, grace, shutdown, sleep)
		}
		if sleep == 0 {
			t.Errorf("%s: no preStop pause", name)
		}
	}
	_, err := render(t, "--set", "terminationGracePeriodSeconds=35")
	if err == nil || !strings.Contains(err.Error(), "must be longer than shutdownTimeoutSeconds") {
		t.Fatalf("grace 35s with shutdown 30s + 5s: err = %v", err)
	}
}

// TestMonitoringOptional: no ServiceMonitor or PrometheusRule by default;
// in production a ServiceMonitor scraping /metrics on the HTTP Service
// over HTTPS, and a PrometheusRule with every alert docs/operations.md
// recommends, each with a runbook section there and only metrics the
// coordinator exports.
func TestMonitoringOptional(t *testing.T) {
	t.Parallel()
	for key := range mustRender(t) {
		if strings.HasPrefix(key, "ServiceMonitor/") || strings.HasPrefix(key, "PrometheusRule/") {
			t.Errorf("%s rendered by default", key)
		}
	}
	objs := production(t)
	sm := need(t, objs, "ServiceMonitor/"+release)
	ep := get(sm, "spec", "endpoints", "0")
	if str(ep, "port") != "http" || str(ep, "path") != "/metrics" || str(ep, "scheme") != "https" {
		t.Errorf("ServiceMonitor endpoint %v", ep)
	}
	httpSvc := need(t, objs, "Service/"+release+"-http")
	if !selects(get(sm, "spec", "selector", "matchLabels"), get(httpSvc, "metadata", "labels").(obj)) {
		t.Error("ServiceMonitor does not select the HTTP Service")
	}
	if selects(get(sm, "spec", "selector", "matchLabels"), get(need(t, objs, "Service/"+release+"-grpc"), "metadata", "labels").(obj)) {
		t.Error("ServiceMonitor selects the gRPC Service")
	}

	ops := readDoc(t, "docs/operations.md")
	rule := need(t, objs, "PrometheusRule/"+release)
	alerts := map[string]obj{}
	for _, g := range list(rule, "spec", "groups") {
		for _, r := range list(g, "rules") {
			alerts[str(r, "alert")] = r.(obj)
		}
	}
	// The alerts docs/operations.md ("Metrics") recommends, by the metric
	// each watches.
	for alert, metric := range map[string]string{
		"SettleTransactionsNeedAttention": "settle_transactions_needing_attention_total",
		"SettleBranchConflicts":           "settle_branch_conflicts_total",
		"SettleRecoveryBacklog":           "settle_recovery_due",
		"SettleBranchCallErrors":          "settle_branch_calls_total",
		"SettleCallsShed":                 "settle_rpc_shed_total",
		"SettleDeliveryRoundsDeferred":    "settle_delivery_rounds_deferred_total",
		"SettleRecoveryStalled":           "settle_recovery_passes_total",
		"SettleCoordinatorDown":           "up",
	} {
		r, ok := alerts[alert]
		if !ok {
			t.Errorf("alert %s missing", alert)
			continue
		}
		if !strings.Contains(str(r, "expr"), metric+"{") {
			t.Errorf("%s: expr %q does not use %s", alert, str(r, "expr"), metric)
		}
		if !strings.Contains(str(r, "expr"), `job="settle-http"`) {
			t.Errorf("%s: expr not scoped to the release's scrape job", alert)
		}
		if !strings.Contains(ops, "### Alert: "+alert+"\n") {
			t.Errorf("docs/operations.md has no runbook section \"### Alert: %s\"", alert)
		}
		if !strings.HasSuffix(str(r, "annotations", "runbook_url"), "#alert-"+strings.ToLower(alert)) {
			t.Errorf("%s: runbook_url %q", alert, str(r, "annotations", "runbook_url"))
		}
		if sev := str(r, "labels", "severity"); sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q", alert, sev)
		}
	}
	for alert, r := range alerts {
		for _, m := range regexp.MustCompile(`settle_[a-z_]+`).FindAllString(str(r, "expr"), -1) {
			if !strings.Contains(ops, "`"+m) {
				t.Errorf("%s uses %s, which docs/operations.md does not describe", alert, m)
			}
		}
	}
	// With every instance down, count() has no series: the alert must
	// still fire.
	if !strings.Contains(str(alerts["SettleCoordinatorDown"], "expr"), "or vector(0)") {
		t.Errorf("SettleCoordinatorDown %q does not fire with every instance down", str(alerts["SettleCoordinatorDown"], "expr"))
	}
	// The backlog threshold follows the recovery batch.
	if !strings.HasSuffix(str(alerts["SettleRecoveryBacklog"], "expr"), ">= 200") {
		t.Errorf("backlog expr %q, want the production recovery-batch 200", str(alerts["SettleRecoveryBacklog"], "expr"))
	}
}

// TestEnvironmentNamesFlags: every SETTLE_* variable the chart sets is a
// coordinator flag listed in docs/configuration.md, and `config` entries
// become SETTLE_* variables; flags the chart owns cannot be overridden
// through config.
func TestEnvironmentNamesFlags(t *testing.T) {
	t.Parallel()
	ref := readDoc(t, "docs/configuration.md")
	for name, objs := range map[string]map[string]obj{"default": mustRender(t), "production": production(t)} {
		env := envOf(t, container(t, need(t, objs, coordinatorKey), "coordinator"))
		for k := range env {
			if strings.HasPrefix(k, "SETTLE_") && !strings.Contains(ref, "`"+k+"`") {
				t.Errorf("%s: %s is not a coordinator flag (docs/configuration.md)", name, k)
			}
		}
	}
	env := envOf(t, container(t, need(t, production(t), coordinatorKey), "coordinator"))
	if env["SETTLE_RETENTION"] != "336h" || env["SETTLE_MAX_IN_FLIGHT"] != "1024" {
		t.Errorf("config entries not passed: SETTLE_RETENTION=%q SETTLE_MAX_IN_FLIGHT=%q", env["SETTLE_RETENTION"], env["SETTLE_MAX_IN_FLIGHT"])
	}
	if env["SETTLE_TLS_CERT"] != "/etc/settle/tls/tls.crt" || env["SETTLE_TLS_CLIENT_CA"] != "/etc/settle/client-ca/ca.crt" ||
		env["SETTLE_PARTICIPANT_TLS_CA"] != "/etc/settle/participant-ca/ca.crt" {
		t.Errorf("TLS files: %v", env)
	}
	if _, err := render(t, "--set", "config.db=sqlite:x.db"); err == nil || !strings.Contains(err.Error(), "config.db is set by the chart") {
		t.Errorf("config.db: err = %v", err)
	}
}

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlertRulesPromtool: the PrometheusRule's groups pass `promtool check
// rules` (PromQL syntax, labels, annotations templates) and its unit tests:
// each alert fires on the series it is about. It needs promtool (the
// PROMTOOL variable or PATH; Debian's prometheus package has it) and skips,
// saying so, without.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		var err error
		if promtool, err = exec.LookPath("promtool"); err != nil {
			t.Skip("promtool not found (set PROMTOOL or install Debian's prometheus package): alert expressions not checked")
		}
	}
	rule := need(t, production(t), "PrometheusRule/"+release)
	dir := t.TempDir()
	rules, err := json.Marshal(get(rule, "spec")) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// Unit tests: one firing case per alert, on series as the Prometheus
	// Operator labels them (job = the HTTP Service, namespace, pod), and
	// quiet ones. promtool compares annotations too: they are the rendered
	// ones with $labels filled in.
	annotations := map[string]map[string]string{}
	for _, g := range list(rule, "spec", "groups") {
		for _, r := range list(g, "rules") {
			a := map[string]string{}
			for k, v := range get(r, "annotations").(obj) {
				a[k] = v.(string)
			}
			annotations[str(r, "alert")] = a
		}
	}
	type alert = map[string]any
	fires := func(name, at string, labels map[string]string) alert {
		ann := map[string]string{}
		for k, v := range annotations[name] {
			for lk, lv := range labels {
				v = strings.ReplaceAll(v, "{{ $labels."+lk+" }}", lv)
			}
			ann[k] = v
		}
		return alert{"eval_time": at, "alertname": name, "exp_alerts": []any{map[string]any{"exp_labels": labels, "exp_annotations": ann}}}
	}
	quiet := func(name, at string) alert {
		return alert{"eval_time": at, "alertname": name, "exp_alerts": []any{}}
	}
	sel := `job="settle-http", namespace="payments", pod="settle-0"`
	series := func(s, values string) map[string]string {
		return map[string]string{"series": s, "values": values}
	}
	w := map[string]string{"severity": "warning"}
	c := map[string]string{"severity": "critical"}
	tests := map[string]any{
		"rule_files":          []string{"rules.yaml"},
		"evaluation_interval": "1m",
		"tests": []any{
			map[string]any{
				"interval": "1m",
				"input_series": []any{
					series(`settle_transactions_needing_attention_total{`+sel+`}`, "0 0 1 1 1"),
					series(`settle_branch_conflicts_total{`+sel+`}`, "0 0 1 1 1"),
					series(`settle_recovery_due{`+sel+`}`, "200x20"),
					series(`settle_branch_calls_total{`+sel+`, call="confirm", result="ok"}`, "0+10x30"),
					series(`settle_branch_calls_total{`+sel+`, call="confirm", result="error"}`, "0+10x30"),
					series(`settle_rpc_shed_total{`+sel+`, limit="instance"}`, "0+5x30"),
					series(`settle_delivery_rounds_deferred_total{`+sel+`}`, "0+5x30"),
					series(`settle_recovery_passes_total{`+sel+`}`, "100x30"),
					series(`up{`+sel+`}`, "1x30"),
				},
				"alert_rule_test": []any{
					fires("SettleTransactionsNeedAttention", "4m", c),
					fires("SettleBranchConflicts", "4m", c),
					fires("SettleRecoveryBacklog", "15m", w),
					fires("SettleBranchCallErrors", "20m", map[string]string{"severity": "warning", "call": "confirm"}),
					fires("SettleCallsShed", "20m", map[string]string{"severity": "warning", "limit": "instance"}),
					fires("SettleDeliveryRoundsDeferred", "20m", w),
					fires("SettleRecoveryStalled", "20m", map[string]string{"severity": "warning", "pod": "settle-0"}),
					fires("SettleCoordinatorDown", "20m", w),
				},
			},
			map[string]any{
				"interval": "1m",
				"input_series": []any{
					series(`settle_transactions_needing_attention_total{`+sel+`}`, "0x20"),
					series(`settle_branch_conflicts_total{`+sel+`}`, "2x20"),
					series(`settle_recovery_due{`+sel+`}`, "3x20"),
					series(`settle_branch_calls_total{`+sel+`, call="confirm", result="ok"}`, "0+100x30"),
					series(`settle_branch_calls_total{`+sel+`, call="confirm", result="error"}`, "0+1x30"),
					series(`settle_recovery_passes_total{`+sel+`}`, "0+60x20"),
					series(`up{job="settle-http", namespace="payments", pod="settle-0"}`, "1x20"),
					series(`up{job="settle-http", namespace="payments", pod="settle-1"}`, "1x20"),
					series(`up{job="settle-http", namespace="payments", pod="settle-2"}`, "1x20"),
				},
				"alert_rule_test": []any{
					quiet("SettleTransactionsNeedAttention", "15m"),
					quiet("SettleBranchConflicts", "15m"),
					quiet("SettleRecoveryBacklog", "15m"),
					quiet("SettleBranchCallErrors", "20m"),
					quiet("SettleRecoveryStalled", "15m"),
					quiet("SettleCoordinatorDown", "15m"),
				},
			},
			map[string]any{
				"interval": "1m",
				// No settle instance scraped at all: still "down".
				"input_series":    []any{series(`up{job="other", namespace="payments", pod="x"}`, "1x20")},
				"alert_rule_test": []any{fires("SettleCoordinatorDown", "10m", w)},
			},
		},
	}
	testsJSON, err := json.Marshal(tests)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), testsJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "tests.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
