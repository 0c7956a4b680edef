package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

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

// serverTLS returns the listeners' TLS configuration, or nil for plaintext.
func (c TLSConfig) serverTLS() (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" {
		if c.ClientCAFile != "" {
			return nil, errors.New("tls: a client CA (mutual TLS) needs a server certificate and key")
		}
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: give both the certificate and the key file")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pool, err := loadPool(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
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
	if caFile == "" && certFile == "" && keyFile == "" {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
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
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, nil
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
