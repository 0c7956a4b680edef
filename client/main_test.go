package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine started by them (or by
// the code they exercise) is still running after they have all finished.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
