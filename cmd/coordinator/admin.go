package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"google.golang.org/grpc"

	"github.com/settle-tcc/settle/client"
	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
)

const adminUsage = `usage: coordinator admin <command> [flags]

commands:
  list      list transactions: [-state S] [-needs-attention] [-min-age 1h] [-max-age 24h]
            [-gid-prefix P] [-participant host:port] [-label key[=value]] [-limit N] [-page TOKEN]
  show      one transaction with its branches: -gid G
  history   one transaction's timeline, times relative to Begin: -gid G (or: history G)
  retry     make a decided, unfinished transaction (or one with a decider past its
            deadline) due now: -gid G
  resolve   resolve a branch by hand: -gid G -branch B -state confirmed|cancelled -reason "why, who"
  overview  counts by state, needs attention, oldest ages, the last hour's decisions and failed calls

Every command takes the connection flags -addr host:port (default 127.0.0.1:7400),
-timeout, -tls-ca, -tls-cert, -tls-key and -token-file, before or after the
command name (environment: SETTLE_ADMIN_ADDR, ...; the token also from
SETTLE_TOKEN_FILE or SETTLE_TOKEN). "coordinator admin <command> -h" lists
the flags of one command.
`

// adminConn is how the admin CLI reaches a coordinator.
type adminConn struct {
	addr, tlsCA, tlsCert, tlsKey string
	tokenFile                    string
	timeout                      time.Duration
}

// register defines the connection flags on fs, with c's values as defaults.
func (c *adminConn) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", c.addr, "coordinator gRPC address")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "call timeout")
	fs.StringVar(&c.tlsCA, "tls-ca", c.tlsCA, "PEM CA bundle: connect over TLS and verify the coordinator against it")
	fs.StringVar(&c.tlsCert, "tls-cert", c.tlsCert, "PEM client certificate (coordinator with mutual TLS)")
	fs.StringVar(&c.tlsKey, "tls-key", c.tlsKey, "PEM private key of -tls-cert")
	fs.StringVar(&c.tokenFile, "token-file", c.tokenFile, "file holding an operator's bearer token (or the environment variable SETTLE_TOKEN)")
}

// adminCommand is one subcommand of coordinator admin: its own flags, and
// what it does with a connected client.
type adminCommand struct {
	name  string
	flags func(fs *flag.FlagSet) func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error
	// gidArg: the command also takes the gid as its one argument instead
	// of -gid.
	gidArg bool
}

var adminCommands = []adminCommand{
	{name: "list", flags: adminList},
	{name: "show", flags: adminShow},
	{name: "history", flags: adminHistory, gidArg: true},
	{name: "retry", flags: adminRetry},
	{name: "resolve", flags: adminResolve},
	{name: "overview", flags: adminOverview},
}

// admin runs `coordinator admin ...` against a running coordinator's
// AdminService. Connection flags may come before or after the command.
func admin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	conn := &adminConn{addr: "127.0.0.1:7400", timeout: 10 * time.Second}
	fs := flag.NewFlagSet("coordinator admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	conn.register(fs)
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("SETTLE_ADMIN")); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("admin: missing command")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	var cmd *adminCommand
	for i := range adminCommands {
		if adminCommands[i].name == name {
			cmd = &adminCommands[i]
		}
	}
	if cmd == nil {
		fs.Usage()
		return fmt.Errorf("admin: unknown command %q", name)
	}
	sub := flag.NewFlagSet("coordinator admin "+name, flag.ContinueOnError)
	sub.SetOutput(stderr)
	sub.Usage = func() {
		fmt.Fprintf(stderr, "usage: coordinator admin %s [flags]\n\nflags:\n", name)
		sub.PrintDefaults()
	}
	do := cmd.flags(sub)
	conn.register(sub)
	if err := sub.Parse(rest); err != nil {
		return err
	}
	if cmd.gidArg && sub.NArg() > 0 && sub.Lookup("gid").Value.String() == "" {
		// "history G [flags]": the gid, then flags again.
		if err := sub.Set("gid", sub.Arg(0)); err != nil {
			return err
		}
		if err := sub.Parse(sub.Args()[1:]); err != nil {
			return err
		}
	}
	if sub.NArg() > 0 {
		sub.Usage()
		return fmt.Errorf("admin %s: unexpected arguments %v", name, sub.Args())
	}
	dialOpts, err := app.ClientDialOptions(conn.tlsCA, conn.tlsCert, conn.tlsKey)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	token, err := client.TokenFrom(conn.tokenFile)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(client.BearerToken(token)))
	}
	cc, err := grpc.NewClient(conn.addr, dialOpts...)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	if err := do(ctx, adminv1.NewAdminServiceClient(cc), stdout); err != nil {
		return fmt.Errorf("admin %s: %w", name, err)
	}
	return nil
}

func adminList(fs *flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	state := fs.String("state", "", "TRYING, COMMITTING, COMMITTED, ABORTING or ABORTED")
	attention := fs.Bool("needs-attention", false, "only transactions flagged as needing attention")
	minAge := fs.Duration("min-age", 0, "only transactions at least this old")
	maxAge := fs.Duration("max-age", 0, "only transactions at most this old (0: any age)")
	prefix := fs.String("gid-prefix", "", "only transactions whose gid starts with this")
	participant := fs.String("participant", "", "only transactions with a branch on this participant target (host:port)")
	label := fs.String("label", "", "only transactions with this label: key, or key=value")
	limit := fs.Int("limit", 100, "page size (1..1000)")
	page := fs.String("page", "", "page token printed by the previous page (with the same filters)")
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		if *minAge < 0 || *maxAge < 0 {
			return errors.New("-min-age and -max-age must not be negative")
		}
		if *limit < 1 || *limit > 1000 {
			return fmt.Errorf("-limit %d must be within 1..1000", *limit)
		}
		req := &adminv1.ListTransactionsRequest{NeedsAttention: *attention, MinAgeSeconds: int64(minAge.Seconds()),
			MaxAgeSeconds: int64(math.Ceil(maxAge.Seconds())), GidPrefix: *prefix, Participant: *participant, Label: *label,
			PageSize: int32(*limit), PageToken: *page}
		if *state != "" {
			v, ok := tccv1.TransactionState_value["TRANSACTION_STATE_"+strings.ToUpper(*state)]
			if !ok {
				return fmt.Errorf("unknown state %q", *state)
			}
			req.State = tccv1.TransactionState(v)
		}
		resp, err := client.ListTransactions(ctx, req)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "GID\tSTATE\tATTEMPTS\tATTENTION\tCREATED\tLAST ERROR")
		for _, tx := range resp.GetTransactions() {
			fmt.Fprintf(w, "%s\t%s\t%d\t%v\t%s\t%s\n", tx.GetGid(), stateName(tx.GetState()), tx.GetAttempts(),
				tx.GetNeedsAttention(), tx.GetCreateTime().AsTime().Format(time.RFC3339), oneLine(tx.GetLastError(), 80))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if t := resp.GetNextPageToken(); t != "" {
			fmt.Fprintf(stdout, "next page: -page %s\n", t)
		}
		return nil
	}
}

func adminShow(fs *flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	gid := fs.String("gid", "", "global transaction id")
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		resp, err := client.GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: *gid})
		if err != nil {
			return err
		}
		printTransaction(stdout, resp.GetTransaction(), resp.GetBranchDetails(), resp.GetLeaseOwner())
		return nil
	}
}

func adminHistory(fs *flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	gid := fs.String("gid", "", "global transaction id")
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		resp, err := client.GetTransactionHistory(ctx, &adminv1.GetTransactionHistoryRequest{Gid: *gid})
		if err != nil {
			return err
		}
		printHistory(stdout, *gid, resp)
		return nil
	}
}

// printHistory prints a transaction's timeline: one line per event, times
// relative to Begin (the first event), with a line where the bound
// dropped attempts.
func printHistory(w io.Writer, gid string, h *adminv1.GetTransactionHistoryResponse) {
	origin := h.GetBeginTime().AsTime()
	fmt.Fprintf(w, "gid %s, begun %s; times relative to it\n", gid, origin.Format(time.RFC3339Nano))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tBRANCH\tDETAIL")
	lastAttempt := map[string]int32{}
	for _, e := range h.GetEvents() {
		at := "+" + e.GetTime().AsTime().Sub(origin).Round(time.Microsecond).String()
		kind := strings.TrimPrefix(e.GetKind().String(), "EVENT_KIND_")
		var detail string
		switch e.GetKind() {
		case adminv1.EventKind_EVENT_KIND_BRANCH_REGISTERED:
			detail = e.GetParticipant()
		case adminv1.EventKind_EVENT_KIND_DECIDED:
			detail = stateName(e.GetState()) + " by " + strings.ToLower(strings.TrimPrefix(e.GetCause().String(), "DECISION_CAUSE_"))
			if e.GetMessage() != "" {
				detail += ": " + oneLine(e.GetMessage(), 100)
			}
		case adminv1.EventKind_EVENT_KIND_ATTEMPT:
			b := e.GetBranchId()
			if prev, ok := lastAttempt[b]; ok && e.GetAttempt() > prev+1 {
				fmt.Fprintf(tw, "\t…\t%s\t%d attempts dropped (the history keeps the first and last ones)\n", b, e.GetAttempt()-prev-1)
			}
			lastAttempt[b] = e.GetAttempt()
			detail = fmt.Sprintf("%s #%d %s %s %s", e.GetCall(), e.GetAttempt(),
				strings.TrimPrefix(e.GetResult().String(), "ATTEMPT_RESULT_"), e.GetCode(), e.GetLatency().AsDuration().Round(time.Microsecond))
			if e.GetMessage() != "" {
				detail += ": " + oneLine(e.GetMessage(), 100)
			}
		case adminv1.EventKind_EVENT_KIND_RESOLVED:
			detail = strings.TrimPrefix(e.GetBranchState().String(), "BRANCH_STATE_") + " by " + e.GetActor() + ": " + oneLine(e.GetMessage(), 100)
		case adminv1.EventKind_EVENT_KIND_RETRY_NOW:
			detail = "by " + e.GetActor()
		case adminv1.EventKind_EVENT_KIND_FINISHED:
			detail = stateName(e.GetState())
		default:
			detail = oneLine(e.GetMessage(), 100)
		}
		if inst := e.GetInstance(); inst != "" && e.GetKind() != adminv1.EventKind_EVENT_KIND_RETRY_NOW {
			detail += " [" + inst + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", at, kind, e.GetBranchId(), detail)
	}
	_ = tw.Flush()
	for _, d := range h.GetDroppedAttempts() {
		fmt.Fprintf(w, "branch %s: %d attempts dropped by the history's bound\n", d.GetBranchId(), d.GetCount())
	}
}

func adminRetry(fs *flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	gid := fs.String("gid", "", "global transaction id")
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		resp, err := client.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: *gid})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is due now (%s)\n", *gid, stateName(resp.GetTransaction().GetState()))
		return nil
	}
}

func adminResolve(fs *flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	gid := fs.String("gid", "", "global transaction id")
	branch := fs.String("branch", "", "branch id")
	state := fs.String("state", "", "confirmed or cancelled: what the participant's data now reflects")
	reason := fs.String("reason", "", "why, and who decided (required)")
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		v, ok := tccv1.BranchState_value["BRANCH_STATE_"+strings.ToUpper(*state)]
		if !ok {
			return fmt.Errorf("-state must be confirmed or cancelled, not %q", *state)
		}
		resp, err := client.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: *gid, BranchId: *branch,
			State: tccv1.BranchState(v), Reason: *reason})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "branch %s of %s resolved as %s; transaction is %s\n", *branch, *gid, strings.ToUpper(*state),
			stateName(resp.GetTransaction().GetState()))
		return nil
	}
}

func stateName(s tccv1.TransactionState) string {
	return strings.TrimPrefix(s.String(), "TRANSACTION_STATE_")
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func printTransaction(w io.Writer, tx *tccv1.Transaction, details []*adminv1.BranchDetail, lease string) {
	fmt.Fprintf(w, "gid:             %s\n", tx.GetGid())
	fmt.Fprintf(w, "state:           %s\n", stateName(tx.GetState()))
	fmt.Fprintf(w, "needs attention: %v\n", tx.GetNeedsAttention())
	fmt.Fprintf(w, "created:         %s\n", tx.GetCreateTime().AsTime().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "deadline:        %s\n", tx.GetDeadline().AsTime().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "updated:         %s\n", tx.GetUpdateTime().AsTime().Format(time.RFC3339Nano))
	if tx.GetNextAttemptTime() != nil {
		fmt.Fprintf(w, "next attempt:    %s\n", tx.GetNextAttemptTime().AsTime().Format(time.RFC3339Nano))
	}
	if lease != "" {
		fmt.Fprintf(w, "lease owner:     %s\n", lease)
	}
	fmt.Fprintf(w, "attempts:        %d\n", tx.GetAttempts())
	if tx.GetLastError() != "" {
		fmt.Fprintf(w, "last error:      %s\n", tx.GetLastError())
	}
	if tx.GetAbortReason() != "" {
		fmt.Fprintf(w, "abort reason:    %s\n", tx.GetAbortReason())
	}
	if tx.GetDecider() != "" {
		fmt.Fprintf(w, "decider:         %s\n", tx.GetDecider())
	}
	for k, v := range tx.GetLabels() {
		fmt.Fprintf(w, "label:           %s=%s\n", k, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BRANCH\tPARTICIPANT\tSTATE\tATTEMPTS\tCONFLICT\tRESOLUTION\tLAST ERROR")
	for i, b := range tx.GetBranches() {
		var d *adminv1.BranchDetail
		if i < len(details) {
			d = details[i]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\t%s\n", b.GetBranchId(), b.GetParticipant(),
			strings.TrimPrefix(b.GetState().String(), "BRANCH_STATE_"), b.GetAttempts(), d.GetConflict(), d.GetResolution(), oneLine(b.GetLastError(), 60))
	}
	_ = tw.Flush()
}

func adminOverview(*flag.FlagSet) func(context.Context, adminv1.AdminServiceClient, io.Writer) error {
	return func(ctx context.Context, client adminv1.AdminServiceClient, stdout io.Writer) error {
		o, err := client.GetOverview(ctx, &adminv1.GetOverviewRequest{})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATE\tCOUNT\tNEEDS ATTENTION")
		for _, s := range o.GetStates() {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", stateName(s.GetState()), s.GetCount(), s.GetNeedsAttention())
		}
		_ = tw.Flush()
		age := func(d interface{ AsDuration() time.Duration }, set bool) string {
			if !set {
				return "none"
			}
			return d.AsDuration().Round(time.Second).String()
		}
		sum := func(v []int64) (n int64) {
			for _, x := range v {
				n += x
			}
			return n
		}
		fmt.Fprintf(stdout, "needs attention (not final): %d\n", o.GetNeedsAttention())
		fmt.Fprintf(stdout, "oldest undecided (TRYING): %s; oldest unfinished: %s\n",
			age(o.GetOldestUndecidedAge(), o.OldestUndecidedAge != nil), age(o.GetOldestUnfinishedAge(), o.OldestUnfinishedAge != nil))
		fmt.Fprintf(stdout, "last hour: %d decisions, %d failed Confirm/Cancel calls\n", sum(o.GetDecisions()), sum(o.GetFailedCalls()))
		return nil
	}
}
