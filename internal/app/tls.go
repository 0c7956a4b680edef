package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig configures transport security. With every field empty the
// coordinator serves and dials plaintext (fine on loopback and inside a
// service mesh that encrypts for it).
type TLSConfig struct {
	// CertFile and KeyFile (PEM) make the gRPC and HTTP listeners serve TLS.
	CertFile string
	KeyFile  string
	// ClientCAFile (PEM), if set, requires every client (initiators,
	// participants checking back, operators) to present a certificate
	// signed by one of these CAs: mutual TLS. Needs CertFile.
	ClientCAFile string
	// ParticipantCAFile (PEM), if set, makes Confirm/Cancel calls use TLS
	// and verify participants' certificates against these CAs (empty with
	// ParticipantCertFile set: the system roots).
	ParticipantCAFile string
	// ParticipantCertFile and ParticipantKeyFile (PEM) are the client
	// certificate presented to participants that require mutual TLS.
	ParticipantCertFile string
	ParticipantKeyFile  string
}

// serverTLS returns what builds the listeners' TLS configurations, or nil
// for plaintext. The certificate, key and client CA are read again by its
// reload (SIGHUP): new handshakes use the new files, established
// connections keep theirs.
func (c TLSConfig) serverTLS() (*tlsReloader, error) {
	if c.CertFile == "" && c.KeyFile == "" {
		if c.ClientCAFile != "" {
			return nil, errors.New("tls: a client CA (mutual TLS) needs a server certificate and key")
		}
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: give both the certificate and the key file")
	}
	r := &tlsReloader{files: c}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// config returns a listener's TLS configuration: each handshake uses the
// files in force, offering the application protocols nextProtos (ALPN).
func (r *tlsReloader) config(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cur := r.cur.Load().Clone()
			cur.NextProtos = nextProtos
			return cur, nil
		},
	}
}

// tlsReloader holds the TLS configuration built from the files in force.
type tlsReloader struct {
	files TLSConfig
	cur   atomic.Pointer[tls.Config]
}

// reload reads the files again; on error the configuration in force stays.
func (r *tlsReloader) reload() error {
	if r == nil {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if r.files.ClientCAFile != "" {
		pool, err := loadPool(r.files.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls: client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	r.cur.Store(cfg)
	return nil
}

// participantHTTPTLS returns the TLS configuration for calls to https://
// participants, from the same files as participantDialOptions.
func (c TLSConfig) participantHTTPTLS() (*tls.Config, error) {
	cfg, err := ClientTLSConfig(c.ParticipantCAFile, c.ParticipantCertFile, c.ParticipantKeyFile)
	if err != nil {
		return nil, fmt.Errorf("participant %w", err)
	}
	return cfg, nil
}

// participantDialOptions returns the dial options for calls to
// participants.
func (c TLSConfig) participantDialOptions() ([]grpc.DialOption, error) {
	opts, err := ClientDialOptions(c.ParticipantCAFile, c.ParticipantCertFile, c.ParticipantKeyFile)
	if err != nil {
		return nil, fmt.Errorf("participant %w", err)
	}
	return opts, nil
}

// ClientDialOptions returns the transport credentials of a gRPC client:
// plaintext when every argument is empty, otherwise TLS verified against
// caFile (PEM; empty: the system roots), presenting certFile/keyFile (PEM)
// when given (mutual TLS).
func ClientDialOptions(caFile, certFile, keyFile string) ([]grpc.DialOption, error) {
	creds, err := ClientCredentials(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(creds)}, nil
}

// ClientCredentials is ClientDialOptions' transport credentials.
func ClientCredentials(caFile, certFile, keyFile string) (credentials.TransportCredentials, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return insecure.NewCredentials(), nil
	}
	cfg, err := ClientTLSConfig(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ClientTLSConfig is the TLS configuration of ClientCredentials, for
// clients that are not gRPC (HTTPS participants): verified against caFile
// (PEM; empty: the system roots), presenting certFile/keyFile when given.
func ClientTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA: %w", err)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("tls: give both the client certificate and the key file")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
