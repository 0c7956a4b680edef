// Package pkitest makes throw-away certificate authorities and leaf
// certificates for tests of TLS and mutual TLS, written as PEM files in a
// test's temporary directory.
package pkitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority whose files live in a temporary directory.
type CA struct {
	t    testing.TB
	dir  string
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

// New returns a CA called name; its certificate is in CAFile.
func New(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{t: t, dir: t.TempDir(), Cert: cert, key: key, next: 2}
	ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

// CAFile is the path of the CA's certificate (PEM).
func (ca *CA) CAFile() string { return filepath.Join(ca.dir, ca.Cert.Subject.CommonName+"-ca.pem") }

func (ca *CA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}

// Names are the subject alternative names of a leaf besides 127.0.0.1.
type Names struct {
	DNS  []string
	URIs []string
}

// Leaf issues a certificate with Common Name cn for 127.0.0.1 (and names),
// usable by servers and clients, and returns its certificate and key files.
func (ca *CA) Leaf(cn string, names ...Names) (certFile, keyFile string) {
	ca.t.Helper()
	_, certFile, keyFile = ca.issue(cn, names...)
	return certFile, keyFile
}

// LeafCert is Leaf returning the parsed certificate as well.
func (ca *CA) LeafCert(cn string, names ...Names) (*x509.Certificate, string, string) {
	ca.t.Helper()
	return ca.issue(cn, names...)
}

func (ca *CA) issue(cn string, names ...Names) (*x509.Certificate, string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	for _, n := range names {
		tmpl.DNSNames = append(tmpl.DNSNames, n.DNS...)
		for _, u := range n.URIs {
			pu, err := url.Parse(u)
			if err != nil {
				ca.t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, pu)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.next++
	file := cn + "-" + big.NewInt(ca.next).String()
	return cert, ca.write(file+".pem", "CERTIFICATE", der), ca.write(file+"-key.pem", "EC PRIVATE KEY", kder)
}
