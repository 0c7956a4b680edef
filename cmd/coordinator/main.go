// Command coordinator runs Settle's TCC coordinator.
//
//	coordinator [flags]              serve (default)
//	coordinator migrate [-print]     apply (or print) the schema migrations and exit
//	coordinator admin <command>      list, show, retry or resolve transactions
//
// Every flag has an environment equivalent: -db is SETTLE_DB,
// -allow-participants is SETTLE_ALLOW_PARTICIPANTS, and so on. A config
// file with one "flag value" per line can be given with -config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/settle-tcc/settle/internal/allowlist"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // -h: the usage was printed
		}
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "migrate":
		return migrate(ctx, args, stdout, stderr)
	case "admin":
		return admin(ctx, args, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate or admin)", cmd)
	}
}

type flags struct {
	cfg       app.Config
	logLevel  string
	logFormat string
}

func parseFlags(name string, args []string, stderr io.Writer) (*flags, *flag.FlagSet, error) {
	f := &flags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	c := &f.cfg
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:7400", "gRPC listen address")
	fs.StringVar(&c.HTTPListen, "http-listen", "", "HTTP listen address for the HTTP/JSON API (every gRPC method; /openapi.json describes it), /metrics and /healthz (default: -listen's port + 1; empty or \"off\" turns it off)")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go profiling endpoints under /debug/pprof/ on -http-listen")
	fs.StringVar(&c.DB, "db", "sqlite:settle.db", "database: sqlite:<path>, mysql:<go-sql-driver DSN> or postgres:<URL or key=value DSN>")
	fs.StringVar(&c.AllowParticipants, "allow-participants", allowlist.Default, "comma-separated host:port patterns of participants the coordinator may call (* wildcards; \"*\" allows all)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 0, "bound on graceful shutdown (default 30s)")
	fs.StringVar(&c.Coordinator.InstanceID, "instance-id", "", "unique name of this instance among those sharing the database (default hostname-pid-random)")
	fs.IntVar(&c.Coordinator.MaxPayloadBytes, "max-payload-bytes", 64<<10, "largest branch payload accepted")
	fs.IntVar(&c.Coordinator.MaxBranches, "max-branches", 64, "most branches per transaction")
	fs.DurationVar(&c.Coordinator.DefaultTimeout, "default-timeout", tcc.DefaultTimeout, "transaction timeout when Begin gives none")
	fs.DurationVar(&c.Coordinator.LeaseTTL, "lease-ttl", 0, "how long an instance owns a transaction it drives (default 30s)")
	fs.DurationVar(&c.Coordinator.CallTimeout, "call-timeout", 0, "timeout of each Confirm/Cancel call (default 10s)")
	fs.DurationVar(&c.Coordinator.Backoff.Initial, "retry-initial", tcc.DefaultBackoff.Initial, "first retry delay of a failed delivery round")
	fs.Float64Var(&c.Coordinator.Backoff.Multiplier, "retry-multiplier", tcc.DefaultBackoff.Multiplier, "retry delay growth per round")
	fs.DurationVar(&c.Coordinator.Backoff.Max, "retry-max", tcc.DefaultBackoff.Max, "longest retry delay")
	fs.Float64Var(&c.Coordinator.Backoff.Jitter, "retry-jitter", tcc.DefaultBackoff.Jitter, "random share (0..1) taken off each retry delay")
	fs.DurationVar(&c.Coordinator.RetryHorizon, "retry-horizon", 24*time.Hour, "flag a decided transaction needs_attention when still unfinished this long after its decision")
	fs.IntVar(&c.Coordinator.MaxAttempts, "max-attempts", 0, "also flag it after this many failed delivery rounds (0: horizon only)")
	fs.Float64Var(&c.Coordinator.ParticipantRetryRate, "participant-retry-rate", 0, "most retried Confirm/Cancel calls per second to one participant target (0: no limit); calls over it wait for a later round")
	fs.Float64Var(&c.Recovery.Rate, "recovery-rate", 0, "most transactions driven per second by the recovery loop (default 1000)")
	fs.DurationVar(&c.Recovery.Retention, "retention", 0, "keep finished transactions this long before purging them (default 168h)")
	fs.DurationVar(&c.Recovery.TombstoneRetention, "tombstone-retention", 0, "keep presumed-abort tombstones this long, at least -retention (default: -retention)")
	fs.DurationVar(&c.Recovery.Interval, "recovery-interval", 0, "pause between recovery passes (default 1s)")
	fs.IntVar(&c.Recovery.BatchSize, "recovery-batch", 0, "due transactions taken per recovery pass (default 100)")
	fs.IntVar(&c.Recovery.Concurrency, "recovery-concurrency", 0, "transactions driven at once by the recovery loop (default 16)")
	fs.StringVar(&c.TLS.CertFile, "tls-cert", "", "PEM certificate: serve gRPC and HTTP over TLS (with -tls-key)")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&c.TLS.ClientCAFile, "tls-client-ca", "", "PEM CA bundle: require client certificates signed by it (mutual TLS)")
	fs.StringVar(&c.TLS.ParticipantCAFile, "participant-tls-ca", "", "PEM CA bundle: call participants over TLS and verify them against it")
	fs.StringVar(&c.TLS.ParticipantCertFile, "participant-tls-cert", "", "PEM client certificate presented to participants (mutual TLS)")
	fs.StringVar(&c.TLS.ParticipantKeyFile, "participant-tls-key", "", "PEM private key of -participant-tls-cert")
	fs.StringVar(&c.Auth.TokenFile, "auth-token-file", "", "bearer tokens: one token,name,role line per identity (roles: initiator, participant, operator, viewer); re-read on SIGHUP")
	fs.StringVar(&c.Auth.MTLSIdentities, "auth-mtls-identities", "", "client certificate identities: comma-separated name=role, name a URI SAN, DNS SAN or Common Name (needs -tls-client-ca)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "allow listening on non-loopback addresses without authentication (something in front must authenticate callers)")
	reflect := fs.Bool("reflection", true, "serve gRPC server reflection (open to every caller)")
	fs.IntVar(&c.Limits.MaxInFlight, "max-in-flight", 2048, "calls served at once; more are refused with RESOURCE_EXHAUSTED at once (0: no limit)")
	fs.IntVar(&c.Limits.MaxInFlightPerCaller, "max-in-flight-per-caller", 0, "calls of one authenticated identity served at once (0: no limit)")
	fs.IntVar(&c.Coordinator.HistoryAttempts, "history-attempts", tcc.DefaultHistoryAttempts, "the history keeps the first and the last this many Confirm/Cancel attempts of each branch (1..1000); the ones between are dropped and counted")
	fs.IntVar(&c.Coordinator.MaxRounds, "max-delivery-rounds", 4096, "delivery rounds run at once for new decisions; beyond it a decision's round waits for the recovery loop (after -lease-ttl)")
	fs.IntVar(&c.MaxParticipantTargets, "max-participant-targets", 1024, "participant connections held open; the least recently used idle one is closed for a new target")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	_ = fs.String("config", "", "optional config file: one \"flag value\" per line")
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix("SETTLE"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.PlainParser),
	)
	if err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.DisableReflection = !*reflect
	httpGiven := false
	fs.Visit(func(fl *flag.Flag) { httpGiven = httpGiven || fl.Name == "http-listen" })
	if c.HTTPListen, err = httpListen(c.Listen, c.HTTPListen, httpGiven); err != nil {
		return nil, nil, err
	}
	return f, fs, nil
}

// httpListen is the HTTP address: given as "" or "off", HTTP is off; not
// given, it is -listen's host with the next port, so that a second
// coordinator started with only -listen changed does not collide on the
// first one's HTTP port.
func httpListen(listen, value string, given bool) (string, error) {
	switch {
	case given && (value == "" || value == "off"):
		return "", nil
	case !given:
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("-listen %q: %w", listen, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", fmt.Errorf("-listen %q: port is not a number", listen)
		}
		if n == 0 {
			return net.JoinHostPort(host, "0"), nil
		}
		if n == 65535 {
			return "", fmt.Errorf("-listen %q: cannot derive -http-listen from port 65535; give -http-listen", listen)
		}
		return net.JoinHostPort(host, strconv.FormatUint(n+1, 10)), nil
	}
	return value, nil
}

const serveUsage = `usage:
  coordinator [flags]                     serve (the default command)
  coordinator migrate [-db D] [-print D]  apply (or print) the schema migrations and exit
  coordinator admin <command> [flags]     list, show, retry or resolve transactions
                                          ("coordinator admin -h" lists the commands)

flags of serve (each also as an environment variable: -db is SETTLE_DB, ...):
`

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	f, _, err := parseFlags("coordinator", args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if app.SetGCPercent() {
		log.Debug("garbage collector target set", "gogc", app.GCPercent)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, f.cfg, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := a.Reload(); err != nil {
				log.Error("reload on SIGHUP failed; the previous settings stay in force", "err", err)
			}
		}
	}()
	serveErr := a.Wait(ctx)
	log.Info("shutting down")
	return errors.Join(serveErr, a.Shutdown(context.Background()))
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coordinator migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "sqlite:settle.db", "database: sqlite:<path>, mysql:<dsn> or postgres:<dsn>")
	print := fs.String("print", "", "print the migrations of a dialect (sqlite, mysql or postgres) instead of applying them")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("SETTLE")); err != nil {
		return err
	}
	if *print != "" {
		files, err := sqlstore.MigrationSQL(database.Dialect(*print))
		if err != nil {
			return fmt.Errorf("print migrations: unknown dialect %q (want sqlite, mysql or postgres)", *print)
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "-- %s\n%s\n", n, files[n])
		}
		return nil
	}
	s, err := sqlstore.Open(ctx, *db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema of %s is up to date\n", s.Dialect())
	return s.Close()
}
