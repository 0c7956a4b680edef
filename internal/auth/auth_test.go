package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/pkitest"
)

const (
	initToken = "init-0123456789abcdef"
	partToken = "part-0123456789abcdef"
	opsToken  = "ops-0123456789abcdef0"
	viewToken = "view-0123456789abcdef"
)

func writeTokens(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const tokenFile = `# Settle tokens: token,name,role
` + initToken + `,orders,initiator
` + partToken + `, payments , participant

"` + opsToken + `",alice,OPERATOR
` + viewToken + `,bob,viewer
`

func TestTokenFile(t *testing.T) {
	a, err := New(Config{TokenFile: writeTokens(t, tokenFile)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Tokens() != 4 {
		t.Fatalf("%d tokens, want 4", a.Tokens())
	}
	for token, want := range map[string]Identity{
		initToken: {Name: "orders", Role: Initiator, Via: "token"},
		partToken: {Name: "payments", Role: Participant, Via: "token"},
		opsToken:  {Name: "alice", Role: Operator, Via: "token"},
		viewToken: {Name: "bob", Role: Viewer, Via: "token"},
	} {
		for _, header := range []string{"Bearer " + token, "bearer " + token, "  Bearer   " + token + " "} {
			if got, err := a.Authenticate(header, nil); err != nil || got != want {
				t.Errorf("Authenticate(%q) = %+v, %v; want %+v", header, got, err, want)
			}
		}
	}
	for _, header := range []string{"Bearer wrong-0123456789abcdef", "Basic " + initToken, "Bearer", initToken, "Bearer " + initToken[:len(initToken)-1]} {
		if _, err := a.Authenticate(header, nil); err != ErrBadToken {
			t.Errorf("Authenticate(%q) = %v, want ErrBadToken", header, err)
		}
	}
	if _, err := a.Authenticate("", nil); err != ErrNoCredentials {
		t.Errorf("no credentials: %v", err)
	}
}

func TestTokenFileErrors(t *testing.T) {
	secret := "s3cret-s3cret-s3cret"
	for name, text := range map[string]string{
		"two fields":      secret + ",orders\n",
		"four fields":     secret + ",orders,initiator,extra\n",
		"short token":     "short,orders,initiator\n",
		"token w/ space":  `"` + secret + ` x",orders,initiator` + "\n",
		"empty name":      secret + ",,initiator\n",
		"unknown role":    secret + ",orders,admin\n",
		"duplicate token": secret + ",orders,initiator\n" + secret + ",payments,participant\n",
		"bad quoting":     `"` + secret + `,orders,initiator` + "\n",
	} {
		_, err := New(Config{TokenFile: writeTokens(t, text)})
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error repeats the token: %v", name, err)
		}
		if !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: the error names no line: %v", name, err)
		}
	}
	if _, err := New(Config{TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing token file was accepted")
	}
}

// TestReload: an edited file takes effect; a broken edit leaves the tokens
// in force.
func TestReload(t *testing.T) {
	path := writeTokens(t, tokenFile)
	a, err := New(Config{TokenFile: path})
	if err != nil {
		t.Fatal(err)
	}
	newToken := "new-0123456789abcdef"
	if err := os.WriteFile(path, []byte(newToken+",orders,initiator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate("Bearer "+initToken, nil); err != ErrBadToken {
		t.Errorf("a removed token still works: %v", err)
	}
	if id, err := a.Authenticate("Bearer "+newToken, nil); err != nil || id.Name != "orders" {
		t.Errorf("the added token: %+v %v", id, err)
	}
	if err := os.WriteFile(path, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if _, err := a.Authenticate("Bearer "+newToken, nil); err != nil {
		t.Errorf("a failed reload dropped the tokens in force: %v", err)
	}
}

func TestCertificateIdentities(t *testing.T) {
	ca := pkitest.New(t, "auth-test")
	a, err := New(Config{MTLSIdentities: "spiffe://prod/ns/shop/sa/orders=initiator, payments.svc.cluster.local=participant,ops-alice=operator"})
	if err != nil {
		t.Fatal(err)
	}
	uri, _, _ := ca.LeafCert("ignored-cn", pkitest.Names{URIs: []string{"spiffe://prod/ns/shop/sa/orders"}, DNS: []string{"payments.svc.cluster.local"}})
	dns, _, _ := ca.LeafCert("ops-alice", pkitest.Names{DNS: []string{"payments.svc.cluster.local"}})
	cn, _, _ := ca.LeafCert("ops-alice")
	stranger, _, _ := ca.LeafCert("mallory", pkitest.Names{DNS: []string{"mallory.example"}})
	if id, err := a.Authenticate("", uri); err != nil || id != (Identity{"spiffe://prod/ns/shop/sa/orders", Initiator, "mtls"}) {
		t.Errorf("URI SAN: %+v %v", id, err)
	}
	if id, err := a.Authenticate("", dns); err != nil || id.Role != Participant {
		t.Errorf("DNS SAN before CN: %+v %v", id, err)
	}
	if id, err := a.Authenticate("", cn); err != nil || id.Role != Operator {
		t.Errorf("CN: %+v %v", id, err)
	}
	if _, err := a.Authenticate("", stranger); err == nil || !strings.Contains(err.Error(), "mallory.example") {
		t.Errorf("unmapped certificate: %v", err)
	}
	// A token, even a wrong one, is judged alone.
	if _, err := a.Authenticate("Bearer nope-0123456789abcdef", cn); err != ErrBadToken {
		t.Errorf("a wrong token with a good certificate: %v", err)
	}
	for _, bad := range []string{"noequals", "=initiator", "x=root", "a=initiator,a=operator"} {
		if _, err := New(Config{MTLSIdentities: bad}); err == nil {
			t.Errorf("MTLSIdentities %q accepted", bad)
		}
	}
}

// TestAuthorizeTable: every role is refused where it does not belong and
// allowed where it does, for every method in the table.
func TestAuthorizeTable(t *testing.T) {
	a, err := New(Config{TokenFile: writeTokens(t, tokenFile)})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[Role]string{Initiator: initToken, Participant: partToken, Operator: opsToken, Viewer: viewToken}
	allowed := map[string][]Role{
		"/settle.tcc.v1.CoordinatorService/Begin":             {Initiator},
		"/settle.tcc.v1.CoordinatorService/RegisterBranch":    {Initiator},
		"/settle.tcc.v1.CoordinatorService/Commit":            {Initiator},
		"/settle.tcc.v1.CoordinatorService/Rollback":          {Initiator},
		"/settle.tcc.v1.CoordinatorService/GetTransaction":    {Initiator, Participant, Operator},
		"/settle.tcc.v1.CoordinatorService/CheckBack":         {Participant},
		"/settle.admin.v1.AdminService/ListTransactions":      {Operator, Viewer},
		"/settle.admin.v1.AdminService/GetTransaction":        {Operator, Viewer},
		"/settle.admin.v1.AdminService/GetTransactionHistory": {Operator, Viewer},
		"/settle.admin.v1.AdminService/GetOverview":           {Operator, Viewer},
		"/settle.admin.v1.AdminService/RetryNow":              {Operator},
		"/settle.admin.v1.AdminService/ResolveBranch":         {Operator},
		"http:pprof": {Operator},
	}
	for method, roles := range allowed {
		for role, token := range tokens {
			want := codes.PermissionDenied
			for _, r := range roles {
				if r == role {
					want = codes.OK
				}
			}
			id, err := a.Authorize(method, "Bearer "+token, nil)
			if got := status.Code(err); got != want {
				t.Errorf("%s as %s: %v, want %v", method, role, err, want)
			}
			if err == nil && id.Role != role {
				t.Errorf("%s as %s: identity %+v", method, role, id)
			}
		}
		if _, err := a.Authorize(method, "", nil); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without credentials: %v, want Unauthenticated", method, err)
		}
		if _, err := a.Authorize(method, "Bearer not-a-known-token-at-all", nil); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s with a wrong token: %v, want Unauthenticated", method, err)
		}
	}
	for _, open := range []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "http:metrics", "http:healthz"} {
		if _, err := a.Authorize(open, "", nil); err != nil {
			t.Errorf("open %s refused: %v", open, err)
		}
	}
	for _, unknown := range []string{"/settle.tcc.v1.CoordinatorService/Frobnicate", "/settle.tcc.v1.ParticipantService/Try", "/other.Service/Call"} {
		if _, err := a.Authorize(unknown, "Bearer "+opsToken, nil); status.Code(err) != codes.PermissionDenied {
			t.Errorf("unknown method %s: %v, want PermissionDenied", unknown, err)
		}
	}
	// Every method the table names is covered above.
	for method := range Policy {
		if _, ok := allowed[method]; !ok && !IsOpen(method) && !strings.HasSuffix(method, "/*") {
			t.Errorf("Policy names %s, which this test does not check", method)
		}
	}
}
