// Package app wires a coordinator instance together: store, domain,
// recovery loop and gRPC server. cmd/coordinator parses flags into a Config
// and calls Start; tests call Start directly on loopback.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/allowlist"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/faults"
	"github.com/settle-tcc/settle/internal/limit"
	"github.com/settle-tcc/settle/internal/metrics"
	"github.com/settle-tcc/settle/internal/recovery"
	"github.com/settle-tcc/settle/internal/rpcopt"
	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Config is a coordinator instance's configuration.
type Config struct {
	// Listen is the gRPC listen address. Default 127.0.0.1:7400.
	Listen string
	// HTTPListen serves the HTTP/JSON API (every CoordinatorService and
	// AdminService RPC, docs/http-api.md), /openapi.json, /metrics and
	// /healthz. Empty disables it.
	HTTPListen string
	// DB is "sqlite:<path>", "mysql:<dsn>" or "postgres:<dsn>". Default
	// sqlite:settle.db.
	DB string
	// AllowParticipants is the comma-separated allow-list of participant
	// targets. Default: loopback only.
	AllowParticipants string
	// ShutdownTimeout bounds graceful shutdown. Default 30s.
	ShutdownTimeout time.Duration
	// TLS configures TLS / mutual TLS for the listeners and for the calls
	// to participants. Zero: plaintext.
	TLS TLSConfig
	// Pprof serves Go's profiling endpoints (/debug/pprof/) on HTTPListen.
	// Off by default: profiles expose internals and cost CPU while taken.
	Pprof bool
	// Auth says where identities come from (bearer tokens, mutual-TLS
	// certificates). Zero: authentication off, which is allowed only on
	// loopback addresses unless InsecureNoAuth is set.
	Auth auth.Config
	// InsecureNoAuth lets a coordinator without authentication listen on
	// addresses other than loopback (behind a trusted proxy or mesh).
	InsecureNoAuth bool
	// DisableReflection turns gRPC server reflection off.
	DisableReflection bool
	// Limits bound the calls served at once; over them a call is refused
	// with RESOURCE_EXHAUSTED at once. Zero: no bound.
	Limits limit.Config
	// MaxParticipantTargets bounds the participant connections held open
	// (server.DefaultMaxTargets when zero).
	MaxParticipantTargets int
	// DisableRecovery turns the recovery loop off (tests of the core only).
	DisableRecovery bool
	// Clock overrides the system clock (tests).
	Clock       tcc.Clock
	Coordinator tcc.Config
	Recovery    recovery.Config
}

// App is a running coordinator instance.
type App struct {
	log    *slog.Logger
	cfg    Config
	store  *sqlstore.Store
	coord  *tcc.Coordinator
	parts  *server.Participants
	grpc   *grpc.Server
	health *health.Server
	lis    net.Listener
	http   *http.Server
	hlis   net.Listener
	mets   *metrics.Metrics
	auth   *auth.Authenticator
	tls    *tlsReloader

	stopLoop context.CancelFunc
	bg       sync.WaitGroup
	serveErr chan error
	once     sync.Once
}

// Start opens the store (applying migrations), starts the recovery loop and
// serves gRPC on cfg.Listen.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7400"
	}
	if cfg.DB == "" {
		cfg.DB = "sqlite:settle.db"
	}
	if cfg.AllowParticipants == "" {
		cfg.AllowParticipants = allowlist.Default
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	allow, err := allowlist.Parse(cfg.AllowParticipants)
	if err != nil {
		return nil, err
	}
	cfg.Coordinator.Allow = allow
	fault, err := faults.FromEnv()
	if err != nil {
		return nil, err
	}

	authn, err := auth.New(cfg.Auth)
	if err != nil {
		return nil, err
	}
	if authn == nil && !cfg.InsecureNoAuth {
		for _, addr := range []string{cfg.Listen, cfg.HTTPListen} {
			if addr != "" && !isLoopback(addr) {
				return nil, fmt.Errorf("refusing to listen on %s without authentication: give -auth-token-file or -auth-mtls-identities, "+
					"or -insecure-no-auth if something in front of the coordinator authenticates its callers", addr)
			}
		}
	}
	serverTLS, err := cfg.TLS.serverTLS()
	if err != nil {
		return nil, err
	}
	if cfg.Auth.MTLSIdentities != "" && cfg.TLS.ClientCAFile == "" {
		return nil, errors.New("auth: mTLS identities need mutual TLS (a client CA, -tls-client-ca)")
	}
	dialOpts, err := cfg.TLS.participantDialOptions()
	if err != nil {
		return nil, err
	}
	httpTLS, err := cfg.TLS.participantHTTPTLS()
	if err != nil {
		return nil, err
	}

	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	a := &App{log: log, cfg: cfg, store: store, parts: server.NewParticipantsFromConfig(server.ParticipantsConfig{
		MaxTargets: cfg.MaxParticipantTargets, DialOptions: rpcopt.DialOptions(dialOpts...), HTTPTLS: httpTLS,
	}), serveErr: make(chan error, 2), mets: metrics.New(), auth: authn, tls: serverTLS}
	coordCfg := cfg.Coordinator
	coordCfg.Deciders = a.parts // deciders are called like participants: same connections, TLS, allow-list
	a.coord, err = tcc.NewCoordinator(store, a.parts, coordCfg, log, cfg.Clock, a.mets.Hooks(fault.Hit))
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	a.mets.StoreRoundTrips(store.RoundTrips)
	cfg.Recovery.Observer = a.mets
	loop, err := recovery.New(store, a.coord, cfg.Recovery, log, cfg.Clock)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	a.lis, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}

	if cfg.HTTPListen != "" {
		a.hlis, err = net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			_ = a.lis.Close()
			_ = store.Close()
			return nil, fmt.Errorf("listen %s: %w", cfg.HTTPListen, err)
		}
	}

	unary := []grpc.UnaryServerInterceptor{recoverPanics(log), a.mets.UnaryInterceptor()}
	var stream []grpc.StreamServerInterceptor
	if authn != nil {
		unary = append(unary, authn.UnaryInterceptor())
		stream = append(stream, authn.StreamInterceptor())
	}
	cfg.Limits.Shed = a.mets.Shed
	limiter := limit.New(cfg.Limits)
	if limiter != nil {
		// After authentication: the per-caller bound needs the caller.
		unary = append(unary, limiter.UnaryInterceptor())
		a.mets.InFlight(limiter.InFlight)
	}
	srvOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		// Handle calls on long-lived worker goroutines whose stacks have
		// already grown, instead of a fresh goroutine per call (growing
		// a new stack was 6-9% of the CPU profile under load). Calls
		// beyond the workers still get their own goroutine.
		grpc.NumStreamWorkers(streamWorkers),
	}
	if serverTLS != nil {
		srvOpts = append(srvOpts, grpc.Creds(credentials.NewTLS(serverTLS.config("h2"))))
		if a.hlis != nil {
			a.hlis = tls.NewListener(a.hlis, serverTLS.config("http/1.1"))
		}
	}
	a.grpc = grpc.NewServer(rpcopt.ServerOptions(srvOpts...)...)
	// The HTTP/JSON gateway calls the same services in-process through
	// the same interceptors (auth, limits, metrics, panics) as gRPC.
	local := server.NewLocal(unary...)
	svc, admin := server.NewCoordinator(a.coord, log), server.NewAdmin(a.coord, log, cfg.Clock)
	for _, reg := range []grpc.ServiceRegistrar{a.grpc, local} {
		tccv1.RegisterCoordinatorServiceServer(reg, svc)
		adminv1.RegisterAdminServiceServer(reg, admin)
	}
	a.health = health.NewServer()
	healthpb.RegisterHealthServer(a.grpc, a.health)
	a.health.SetServingStatus(tccv1.CoordinatorService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	if !cfg.DisableReflection {
		reflection.Register(a.grpc)
	}

	var httpHandler http.Handler
	if a.hlis != nil {
		guard := func(method string, h http.Handler) http.Handler {
			if limiter != nil {
				h = limiter.HTTP(method, h)
			}
			if authn != nil {
				h = authn.HTTP(method, h) // outside the limit: it names the caller
			}
			return h
		}
		httpHandler, err = server.HTTPHandler(server.HTTPConfig{Services: local, Registry: a.mets.Registry, Guard: guard,
			MaxBodyBytes: server.MaxBodyBytes(a.coord.Config().MaxPayloadBytes, a.coord.Config().MaxBranches)})
		if err != nil {
			_ = a.lis.Close()
			_ = a.hlis.Close()
			_ = store.Close()
			return nil, err
		}
		if cfg.Pprof {
			httpHandler = withPprof(httpHandler, guard)
		}
	}

	loopCtx, stop := context.WithCancel(context.Background())
	a.stopLoop = stop
	if !cfg.DisableRecovery {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			_ = loop.Run(loopCtx)
		}()
	}
	go func() { a.serveErr <- a.grpc.Serve(a.lis) }()
	if a.hlis != nil {
		a.http = &http.Server{Handler: httpHandler, ReadHeaderTimeout: 10 * time.Second,
			// Refused handshakes and broken connections, at debug level.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		go func() {
			if err := a.http.Serve(a.hlis); !errors.Is(err, http.ErrServerClosed) {
				a.serveErr <- err
			}
		}()
	}
	log.Info("coordinator started", "listen", a.lis.Addr().String(), "http_listen", a.HTTPAddr(), "db", string(store.Dialect()),
		"instance", a.coord.Config().InstanceID, "allow_participants", allow.String(), "recovery", !cfg.DisableRecovery,
		"tls", serverTLS != nil, "mtls", cfg.TLS.ClientCAFile != "", "auth_tokens", authn.Tokens(), "auth_mtls_identities", cfg.Auth.MTLSIdentities != "")
	if authn == nil {
		log.Warn("authentication is off: any caller that reaches the listeners may call every method, AdminService included",
			"insecure_no_auth", cfg.InsecureNoAuth)
	}
	return a, nil
}

// Reload re-reads what can change without a restart: the token file and
// the server's TLS certificate, key and client CA. Established connections
// and calls in flight are not touched; new handshakes and calls use what
// was reloaded. A part that fails to reload keeps what was in force, and
// the error is returned.
func (a *App) Reload() error {
	err := errors.Join(a.auth.Reload(), a.tls.reload())
	a.log.Info("reloaded", "auth_tokens", a.auth.Tokens(), "tls", a.tls != nil, "err", err)
	return err
}

// isLoopback reports whether a listen address accepts connections from
// this machine only: "localhost" or a loopback IP (an empty host listens
// on every interface).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && allowlist.IsLoopbackHost(host)
}

// Addr returns the address the gRPC server listens on.
func (a *App) Addr() string { return a.lis.Addr().String() }

// HTTPAddr returns the address of the HTTP listener, or "" if disabled.
func (a *App) HTTPAddr() string {
	if a.hlis == nil {
		return ""
	}
	return a.hlis.Addr().String()
}

// Coordinator returns the domain coordinator (for tests).
func (a *App) Coordinator() *tcc.Coordinator { return a.coord }

// Store returns the store (for tests).
func (a *App) Store() *sqlstore.Store { return a.store }

// Wait blocks until the gRPC server stops on its own (an error) or ctx ends.
func (a *App) Wait(ctx context.Context) error {
	select {
	case err := <-a.serveErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Shutdown stops the instance gracefully: it reports NOT_SERVING, stops
// accepting calls and lets running calls finish, stops the recovery loop,
// waits for in-flight delivery rounds (bounded by ShutdownTimeout) and
// closes the store. Anything unfinished is resumed by a recovery loop after
// its lease expires.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
		defer cancel()
		a.health.Shutdown()
		if a.http != nil {
			_ = a.http.Shutdown(ctx)
		}
		stopped := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			a.grpc.Stop()
		}
		a.stopLoop()
		a.bg.Wait()
		err = a.coord.Close(ctx)
		err = errors.Join(err, a.parts.Close(), a.store.Close())
		a.log.Info("coordinator stopped", "err", err)
	})
	return err
}

// GCPercent is the garbage collector's target a coordinator process runs
// with when GOGC is not set. Its live heap is small (a few MB: connections,
// in-flight transactions) while it allocates per request, so Go's default
// of 100 collects many times a second under load; 400 cut the GC's share of
// the CPU profile from 10% to 2% (BENCHMARKS.md) for a few MB more heap.
const GCPercent = 400

// SetGCPercent applies GCPercent unless the operator set GOGC; it reports
// whether it did.
func SetGCPercent() bool {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return false
	}
	debug.SetGCPercent(GCPercent)
	return true
}

// streamWorkers is the number of gRPC stream workers: enough for the calls
// one instance has in flight under load (most wait on a database batch).
const streamWorkers = 64

// withPprof serves net/http/pprof's handlers under /debug/pprof/ (for the
// operator role when authentication is on) and everything else through h.
func withPprof(h http.Handler, guard func(string, http.Handler) http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/debug/pprof/", guard("http:pprof", http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", guard("http:pprof", http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", guard("http:pprof", http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", guard("http:pprof", http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", guard("http:pprof", http.HandlerFunc(pprof.Trace)))
	return mux
}

// recoverPanics turns a panic in a handler into an INTERNAL status and an
// error log, so no input can take the server down. Handlers are written not
// to panic; this is the last line of defence.
func recoverPanics(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error; see coordinator logs")
			}
		}()
		return handler(ctx, req)
	}
}
