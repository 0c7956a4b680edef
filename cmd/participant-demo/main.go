// Command participant-demo runs Settle's demo participants (an account
// service and an inventory service over one database) and places demo
// orders through a coordinator.
//
// Usage:
//
//	participant-demo [serve] [-listen 127.0.0.1:7501] [-db sqlite:demo.db] [-resources accounts,inventory]
//	                 [-coordinator 127.0.0.1:7400] [-checkback-after 30s] [-checkback-interval 5s]
//	participant-demo order [-user alice] [-sku book] [-qty 1] [-coordinator 127.0.0.1:7400] [-participant 127.0.0.1:7501] [-local [-db sqlite:demo.db]]
//	participant-demo balances [-db sqlite:demo.db]
//	participant-demo fences [-db sqlite:demo.db] [-from -24h] [-to 2030-01-01T00:00:00Z] [-gid G] [-coordinator 127.0.0.1:7400]
//
// serve runs the participants on the participant SDK; with -coordinator it
// also runs the SDK's check-back worker, which settles tried branches that
// hear no Confirm or Cancel within -checkback-after by asking the
// coordinator, and purges old fence rows.
//
// fences lists the participant's fence records (reconciliation, see
// docs/participant-protocol.md); with -coordinator each record is compared
// with the coordinator's GetTransaction answer and fences exits 2 if any
// record is a MISMATCH.
//
// Every flag can also be set in the environment as SETTLE_DEMO_<FLAG> (for
// example SETTLE_DEMO_DB), or in a file named by -config with one
// "flag value" per line.
//
// order -local commits through the order service's own database (the -db
// that serve uses): a demo_order row and the decision row (gid, commit)
// in one local transaction, with serve, which also serves the decider over
// that database, named as the transaction's decider (docs/initiators.md).
//
// order exits 0 when the order committed, 2 when it was rolled back because
// a participant refused it (insufficient funds or stock), and 1 on errors.
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
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/rpcopt"
	"github.com/settle-tcc/settle/participant"
)

// envPrefix prefixes the environment variables that set flags.
const envPrefix = "SETTLE_DEMO"

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitRefused = 2 // order rolled back for a business reason
)

// Flag defaults shared by several subcommands.
const (
	defaultDB          = "sqlite:demo.db"
	defaultParticipant = "127.0.0.1:7501"
	defaultCoordinator = "127.0.0.1:7400"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	code := exitOK
	switch cmd {
	case "serve":
		var cfg serveConfig
		if cfg, err = parseServe(rest, stderr); err == nil {
			err = serve(ctx, cfg, stderr)
		}
	case "order":
		var cfg orderConfig
		if cfg, err = parseOrder(rest, stderr); err == nil {
			code, err = order(ctx, cfg, stdout, stderr)
		}
	case "fences":
		var cfg fencesConfig
		if cfg, err = parseFences(rest, stderr); err == nil {
			code, err = fences(ctx, cfg, stdout)
		}
	case "balances":
		var cfg balancesConfig
		if cfg, err = parseBalances(rest, stderr); err == nil {
			err = balances(ctx, cfg.DB, stdout)
		}
	default:
		fmt.Fprintf(stderr, "participant-demo: unknown command %q (want serve, order, balances or fences)\n", cmd)
		return exitError
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "participant-demo %s: %v\n", cmd, err)
		return exitError
	}
	return code
}

// serveConfig holds the flags of serve.
type serveConfig struct {
	Listen          string
	DB              string
	Resources       []demo.Resource
	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration
	// Coordinator is the coordinator the check-back worker asks; empty
	// disables the worker.
	Coordinator       string
	CheckBackAfter    time.Duration
	CheckBackInterval time.Duration
	// TokenFile holds the participant's bearer token for the coordinator.
	TokenFile string
	TLS       coordTLS
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	fs.StringVar(&cfg.Listen, "listen", defaultParticipant, "address to serve ParticipantService on")
	fs.StringVar(&cfg.DB, "db", defaultDB, "database: sqlite:<path>, mysql:<dsn> or postgres:<dsn>")
	resources := fs.String("resources", "accounts,inventory", "resources to serve, comma-separated")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to let in-flight calls finish on shutdown")
	fs.StringVar(&cfg.Coordinator, "coordinator", "", "coordinator gRPC target for check-back of tried branches that hear nothing (empty: no check-back)")
	fs.DurationVar(&cfg.CheckBackAfter, "checkback-after", participant.DefaultCheckBackAfter, "how long a tried branch waits for Confirm/Cancel before checking back")
	fs.DurationVar(&cfg.CheckBackInterval, "checkback-interval", 5*time.Second, "how often the check-back worker looks for due branches")
	fs.StringVar(&cfg.TokenFile, "token-file", "", tokenFileUsage)
	cfg.TLS.register(fs)
	if err := parse(fs, args); err != nil {
		return serveConfig{}, err
	}
	if cfg.CheckBackAfter <= 0 || cfg.CheckBackInterval <= 0 {
		return serveConfig{}, fmt.Errorf("-checkback-after and -checkback-interval must be positive")
	}
	var err error
	if cfg.Resources, err = demo.ParseResources(*resources); err != nil {
		return serveConfig{}, err
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return serveConfig{}, fmt.Errorf("-log-format %q: want text or json", cfg.LogFormat)
	}
	return cfg, nil
}

// orderConfig holds the flags of order.
type orderConfig struct {
	GID         string
	User        string
	SKU         string
	Qty         int64
	Coordinator string
	Participant string
	DB          string
	Timeout     time.Duration
	TokenFile   string
	TLS         coordTLS
	Local       bool
}

func parseOrder(args []string, stderr io.Writer) (orderConfig, error) {
	fs := flag.NewFlagSet("order", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg orderConfig
	fs.StringVar(&cfg.GID, "gid", "", "transaction id (default: generated)")
	fs.StringVar(&cfg.User, "user", "alice", "paying account")
	fs.StringVar(&cfg.SKU, "sku", "book", "item to buy")
	fs.Int64Var(&cfg.Qty, "qty", 1, "quantity")
	fs.StringVar(&cfg.Coordinator, "coordinator", defaultCoordinator, "coordinator gRPC target")
	fs.StringVar(&cfg.Participant, "participant", defaultParticipant, "participant gRPC target serving accounts and inventory")
	fs.StringVar(&cfg.DB, "db", defaultDB, "participant database, read to print balances afterwards")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "transaction timeout, also the deadline of the order's calls")
	fs.StringVar(&cfg.TokenFile, "token-file", "", tokenFileUsage)
	fs.BoolVar(&cfg.Local, "local", false, "commit through the order service's database (-db): the order row and the decision row in one local transaction, with -participant as the decider (docs/initiators.md)")
	cfg.TLS.register(fs)
	if err := parse(fs, args); err != nil {
		return orderConfig{}, err
	}
	if cfg.Timeout <= 0 {
		return orderConfig{}, fmt.Errorf("-timeout must be positive")
	}
	return cfg, nil
}

// balancesConfig holds the flags of balances.
type balancesConfig struct {
	DB string
}

func parseBalances(args []string, stderr io.Writer) (balancesConfig, error) {
	fs := flag.NewFlagSet("balances", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg balancesConfig
	fs.StringVar(&cfg.DB, "db", defaultDB, "participant database")
	if err := parse(fs, args); err != nil {
		return balancesConfig{}, err
	}
	return cfg, nil
}

const tokenFileUsage = "file holding the bearer token for the coordinator (default: the file in SETTLE_TOKEN_FILE, or SETTLE_TOKEN)"

// coordTLS is how the demo reaches the coordinator over TLS.
type coordTLS struct{ ca, cert, key string }

func (c *coordTLS) register(fs *flag.FlagSet) {
	fs.StringVar(&c.ca, "coordinator-tls-ca", "", "PEM CA bundle: reach the coordinator over TLS and verify it against this CA")
	fs.StringVar(&c.cert, "coordinator-tls-cert", "", "PEM client certificate for a coordinator with mutual TLS")
	fs.StringVar(&c.key, "coordinator-tls-key", "", "PEM private key of -coordinator-tls-cert")
}

// creds returns the transport credentials for the coordinator (plaintext
// when no file is given).
func (c coordTLS) creds() (credentials.TransportCredentials, error) {
	return app.ClientCredentials(c.ca, c.cert, c.key)
}

// coordinatorClient returns a client SDK for the coordinator with the
// token and TLS settings; participants are reached in plaintext.
func coordinatorClient(target, tokenFile string, tlsc coordTLS) (*client.Client, error) {
	token, err := client.TokenFrom(tokenFile)
	if err != nil {
		return nil, err
	}
	creds, err := tlsc.creds()
	if err != nil {
		return nil, err
	}
	// WithRunWait: order -local's CommitLocal waits for the first Confirm
	// round, as the plain order's Commit does, so that the printed states
	// and balances are the settled ones.
	return client.New(target, client.WithToken(token), client.WithTransportCredentials(creds),
		client.WithParticipantTransportCredentials(insecure.NewCredentials()), client.WithRunWait(true))
}

// parse parses args, then the SETTLE_DEMO_* environment, then an optional
// -config file, and refuses positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	fs.String("config", "", "optional config file (one \"flag value\" per line)")
	if err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix(envPrefix),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.PlainParser),
	); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

func newLogger(cfg serveConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the participant until ctx is done, then stops gracefully.
func serve(ctx context.Context, cfg serveConfig, logw io.Writer) error {
	log := newLogger(cfg, logw)
	db, dialect, err := database.Open(cfg.DB)
	if err != nil {
		return err
	}
	defer database.Close(db)
	if err := demo.Migrate(ctx, db, dialect); err != nil {
		return err
	}
	if err := demo.Seed(ctx, db); err != nil {
		return err
	}
	// The same database holds the order service's tables: serve is also
	// the decider of orders placed with `order -local`.
	if err := demo.EnsureOrderService(ctx, db); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	part, err := demo.NewServerConfig(demo.ServerConfig{DB: db, Resources: cfg.Resources, Logger: log, CheckBackAfter: cfg.CheckBackAfter})
	if err != nil {
		return err
	}
	var checkDone chan error
	stopCheck := func() {}
	if cfg.Coordinator != "" {
		token, err := client.TokenFrom(cfg.TokenFile)
		if err != nil {
			return err
		}
		creds, err := cfg.TLS.creds()
		if err != nil {
			return err
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(client.BearerToken(token)))
		}
		cc, err := grpc.NewClient(cfg.Coordinator, rpcopt.DialOptions(opts...)...)
		if err != nil {
			return fmt.Errorf("coordinator %s: %w", cfg.Coordinator, err)
		}
		defer cc.Close()
		chk, err := part.NewChecker(participant.CheckerConfig{Coordinator: tccv1.NewCoordinatorServiceClient(cc), Interval: cfg.CheckBackInterval})
		if err != nil {
			return err
		}
		cctx, cancel := context.WithCancel(context.Background())
		stopCheck = cancel
		checkDone = make(chan error, 1)
		go func() { checkDone <- chk.Run(cctx) }()
		log.Info("participant-demo: check-back enabled", "coordinator", cfg.Coordinator, "after", cfg.CheckBackAfter)
	} else {
		log.Info("participant-demo: check-back disabled (no -coordinator)")
	}
	defer func() {
		stopCheck()
		if checkDone != nil {
			<-checkDone
		}
	}()
	srv := grpc.NewServer(rpcopt.ServerOptions()...)
	tccv1.RegisterParticipantServiceServer(srv, part)
	tccv1.RegisterDeciderServiceServer(srv, client.NewDecider(db))
	hs := health.NewServer()
	hs.SetServingStatus(tccv1.ParticipantService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("participant-demo: serving", "addr", lis.Addr().String(), "db_dialect", string(dialect), "resources", cfg.Resources)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("participant-demo: shutting down")
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		log.Warn("participant-demo: shutdown timeout, closing remaining calls")
		srv.Stop()
		<-stopped
	}
	log.Info("participant-demo: stopped")
	return nil
}

// order places one order and prints its outcome and the resulting balances.
func order(ctx context.Context, cfg orderConfig, stdout, stderr io.Writer) (int, error) {
	c, err := coordinatorClient(cfg.Coordinator, cfg.TokenFile, cfg.TLS)
	if err != nil {
		return exitError, err
	}
	defer c.Close()
	var local *demo.Local
	if cfg.Local {
		db, err := openServed(ctx, cfg.DB)
		if err != nil {
			return exitError, err
		}
		defer database.Close(db)
		if err := demo.EnsureOrderService(ctx, db); err != nil {
			return exitError, err
		}
		local = &demo.Local{DB: db, Decider: cfg.Participant}
	}
	octx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res, err := demo.PlaceOrder(octx, c, demo.Order{
		GID:         cfg.GID,
		User:        cfg.User,
		SKU:         cfg.SKU,
		Qty:         cfg.Qty,
		Participant: cfg.Participant,
		Timeout:     cfg.Timeout,
		Local:       local,
	})
	if res.GID != "" {
		fmt.Fprintf(stdout, "gid:     %s\n", res.GID)
	}
	code := exitOK
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "outcome: ERROR\n")
		code = exitError
	case res.Committed:
		fmt.Fprintf(stdout, "outcome: COMMITTED\n")
	default:
		fmt.Fprintf(stdout, "outcome: ABORTED (%s)\n", res.Reason)
		code = exitRefused
	}
	if s := res.Transaction.GetState(); s != tccv1.TransactionState_TRANSACTION_STATE_UNSPECIFIED {
		fmt.Fprintf(stdout, "state:   %s\n", strings.TrimPrefix(s.String(), "TRANSACTION_STATE_"))
	}
	for _, b := range res.Transaction.GetBranches() {
		fmt.Fprintf(stdout, "branch:  %-10s %s\n", b.GetBranchId(), strings.TrimPrefix(b.GetState().String(), "BRANCH_STATE_"))
	}
	if local != nil {
		if o, lerr := demo.LookupOrder(ctx, local.DB, res.GID); lerr == nil {
			fmt.Fprintf(stdout, "order:   %s x%d for %s, committed locally with the decision\n", o.SKU, o.Qty, cents(o.Amount))
		} else if errors.Is(lerr, demo.ErrNoOrder) {
			fmt.Fprintf(stdout, "order:   no order row (nothing committed locally)\n")
		}
	}
	if err != nil {
		return code, err
	}
	fmt.Fprintln(stdout)
	if berr := balances(ctx, cfg.DB, stdout); berr != nil {
		fmt.Fprintf(stderr, "participant-demo order: cannot print balances: %v\n", berr)
	}
	return code, nil
}

// openServed opens, for a read-only command, the database that
// `participant-demo serve` created: it refuses a missing SQLite file (run
// from another directory, it would otherwise create an empty one) and a
// database without the demo's tables, saying what to do.
func openServed(ctx context.Context, spec string) (*gorm.DB, error) {
	db, _, err := database.OpenExisting(spec)
	if errors.Is(err, database.ErrNotExist) {
		return nil, fmt.Errorf("%w (the demo's database is created by `participant-demo serve`; pass its -db, e.g. -db sqlite:/path/to/demo.db)", err)
	}
	if err != nil {
		return nil, err
	}
	for _, table := range []string{"demo_account", "demo_stock", participant.DefaultTable} {
		if err := db.WithContext(ctx).Exec("SELECT 1 FROM " + table + " WHERE 1 = 0").Error; err != nil {
			_ = database.Close(db)
			return nil, fmt.Errorf("the database has no %s table: it is not a demo participant's database (start `participant-demo serve` on it once, or pass the -db that serve uses)", table)
		}
	}
	return db, nil
}

// balances prints the accounts and the stock held in spec.
func balances(ctx context.Context, spec string, w io.Writer) error {
	db, err := openServed(ctx, spec)
	if err != nil {
		return err
	}
	defer database.Close(db)
	snap, err := demo.Totals(ctx, db)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ACCOUNT\tBALANCE\tFROZEN\tAVAILABLE\t")
	for _, a := range snap.Accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", a.Name, cents(a.Balance), cents(a.Frozen), cents(a.Balance-a.Frozen))
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t\t\n", cents(snap.Balance), cents(snap.Frozen))
	fmt.Fprintln(tw, "\t\t\t\t")
	fmt.Fprintln(tw, "SKU\tSTOCK\tRESERVED\tSOLD\t")
	for _, s := range snap.Stock {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", s.SKU, s.Stock, s.Reserved, s.Sold)
	}
	return tw.Flush()
}

// fencesConfig holds the flags of fences.
type fencesConfig struct {
	DB          string
	From, To    time.Time
	GID         string
	Coordinator string
	TokenFile   string
	TLS         coordTLS
}

// timeFlag parses an RFC 3339 time, or a duration relative to now ("-1h").
type timeFlag struct {
	t   *time.Time
	now time.Time
}

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		*f.t = t
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time or a duration relative to now (e.g. -1h)")
	}
	*f.t = f.now.Add(d)
	return nil
}

func parseFences(args []string, stderr io.Writer) (fencesConfig, error) {
	fs := flag.NewFlagSet("fences", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fencesConfig
	now := time.Now()
	fs.StringVar(&cfg.DB, "db", defaultDB, "participant database")
	fs.Var(timeFlag{&cfg.From, now}, "from", "list fence records created at or after this time (RFC 3339, or a duration relative to now such as -24h)")
	fs.Var(timeFlag{&cfg.To, now}, "to", "list fence records created before this time (same forms)")
	fs.StringVar(&cfg.GID, "gid", "", "list one transaction's records only")
	fs.StringVar(&cfg.Coordinator, "coordinator", "", "if set, compare each record with the coordinator's GetTransaction answer")
	fs.StringVar(&cfg.TokenFile, "token-file", "", tokenFileUsage)
	cfg.TLS.register(fs)
	if err := parse(fs, args); err != nil {
		return fencesConfig{}, err
	}
	return cfg, nil
}

// fences prints the fence records of a time window and, with a
// coordinator, how each compares with the coordinator's record. It exits
// with exitRefused (2) when some record is a MISMATCH.
func fences(ctx context.Context, cfg fencesConfig, w io.Writer) (int, error) {
	db, err := openServed(ctx, cfg.DB)
	if err != nil {
		return exitError, err
	}
	defer database.Close(db)
	recs, err := participant.ListRecords(ctx, db, participant.Query{From: cfg.From, To: cfg.To, GID: cfg.GID})
	if err != nil {
		return exitError, err
	}
	var cmp []participant.Comparison
	if cfg.Coordinator != "" {
		c, err := coordinatorClient(cfg.Coordinator, cfg.TokenFile, cfg.TLS)
		if err != nil {
			return exitError, err
		}
		defer c.Close()
		if cmp, err = participant.Reconcile(ctx, c.Coordinator(), recs); err != nil {
			return exitError, err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "CREATED\tGID\tBRANCH\tSTATE\tTRIED\tCHECKS\tPAYLOAD"
	if cmp != nil {
		head += "\tCOORDINATOR\tBRANCH_STATE\tAGREEMENT"
	}
	fmt.Fprintln(tw, head)
	code := exitOK
	for i, r := range recs {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%t\t%d\t%s", r.CreatedAt.Format(time.RFC3339Nano), r.GID, r.BranchID, r.State, r.Tried, r.CheckCount, r.Payload)
		if cmp != nil {
			c := cmp[i]
			line += fmt.Sprintf("\t%s\t%s\t%s",
				strings.TrimPrefix(c.TransactionState.String(), "TRANSACTION_STATE_"),
				strings.TrimPrefix(c.BranchState.String(), "BRANCH_STATE_"), c.Agreement)
			if c.Agreement == participant.AgreeMismatch {
				code = exitRefused
			}
		}
		fmt.Fprintln(tw, line)
	}
	return code, tw.Flush()
}

// cents formats an amount in cents as units with two decimals.
func cents(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}
