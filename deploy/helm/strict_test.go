package helm_test

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestManifestsDecodeStrictly: every rendered object of a built-in kind
// decodes into the Kubernetes API types of client-go v0.37 (the version
// helm v3.22 links) with unknown and duplicate fields refused, for the
// default values, the production values and the TLS, insecure and
// no-migration variants. (ServiceMonitor and PrometheusRule are custom
// resources: TestMonitoringOptional and TestAlertRulesPromtool check them.)
func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Strict: true})
	variants := map[string][]string{
		"default":    nil,
		"production": {"-f", chart + "/values-production.yaml"},
		"tls":        {"--set", "tls.enabled=true", "--set", "tls.secretName=tls"},
		"insecure":   {"--set", "auth.tokenSecret=", "--set", "insecureNoAuth=true", "--set", "preStopSleepSeconds=0"},
		"no migration, no PDB, no headless": {"--set", "migration.enabled=false", "--set", "podDisruptionBudget.enabled=false",
			"--set", "service.headless=false"},
	}
	// The decoder does refuse what the API server would not know.
	bad := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"template":{"spec":{"containers":[{"name":"c","readinessProbe":{"grpc":{"port":7400},"sleep":{}}}]}}}}`
	if _, _, err := strict.Decode([]byte(bad), nil, nil); err == nil {
		t.Fatal("strict decoding accepted an unknown probe field")
	}
	for name, args := range variants {
		decoded := 0
		for key, o := range mustRender(t, args...) {
			gv, err := schema.ParseGroupVersion(str(o, "apiVersion"))
			if err != nil {
				t.Fatalf("%s: %s: %v", name, key, err)
			}
			gvk := gv.WithKind(str(o, "kind"))
			if !scheme.Scheme.Recognizes(gvk) {
				if gvk.Group != "monitoring.coreos.com" {
					t.Errorf("%s: %s: %v is not a Kubernetes API kind", name, key, gvk)
				}
				continue
			}
			js, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := strict.Decode(js, nil, nil); err != nil {
				t.Errorf("%s: %s does not decode strictly as %v: %v", name, key, gvk, err)
			}
			decoded++
		}
		if decoded < 3 {
			t.Errorf("%s: only %d objects decoded", name, decoded)
		}
	}
}
