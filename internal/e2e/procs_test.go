package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/settle-tcc/settle/internal/faulttest"
)

// bins holds the binaries built once for the package's tests, with the
// fault-injection harness's builder.
var bins *faulttest.Binaries

func TestMain(m *testing.M) {
	var err error
	bins, err = faulttest.Build(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := faulttest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// start runs bin with args and env until the test ends (SIGKILL then),
// and waits until its gRPC health check answers SERVING. The output is
// logged if the test failed.
func start(t testing.TB, name, bin, addr string, env []string, args ...string) *faulttest.Proc {
	t.Helper()
	p := faulttest.NewProc(name, addr, bin, args...)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.Tail(64<<10))
		}
	})
	if err := p.Start(env...); err != nil {
		t.Fatal(err)
	}
	return p
}
