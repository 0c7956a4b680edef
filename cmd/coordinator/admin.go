package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"google.golang.org/grpc"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
)

const adminUsage = `usage: coordinator admin [-addr host:port] [-tls-ca F [-tls-cert F -tls-key F]] <command> [flags]

commands:
  list    [-state S] [-needs-attention] [-min-age 1h] [-limit N] [-page TOKEN]
  show    -gid G
  retry   -gid G
  resolve -gid G -branch B -state confirmed|cancelled -reason "why, who"
`

// admin runs `coordinator admin ...` against a running coordinator's
// AdminService.
func admin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coordinator admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	addr := fs.String("addr", "127.0.0.1:7400", "coordinator gRPC address")
	timeout := fs.Duration("timeout", 10*time.Second, "call timeout")
	tlsCA := fs.String("tls-ca", "", "PEM CA bundle: connect over TLS and verify the coordinator against it")
	tlsCert := fs.String("tls-cert", "", "PEM client certificate (coordinator with mutual TLS)")
	tlsKey := fs.String("tls-key", "", "PEM private key of -tls-cert")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("SETTLE_ADMIN")); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("admin: missing command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	dialOpts, err := app.ClientDialOptions(*tlsCA, *tlsCert, *tlsKey)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	cc, err := grpc.NewClient(*addr, dialOpts...)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer cc.Close()
	client := adminv1.NewAdminServiceClient(cc)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	sub := flag.NewFlagSet("coordinator admin "+cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	gid := sub.String("gid", "", "global transaction id")
	switch cmd {
	case "list":
		state := sub.String("state", "", "TRYING, COMMITTING, COMMITTED, ABORTING or ABORTED")
		attention := sub.Bool("needs-attention", false, "only transactions flagged as needing attention")
		minAge := sub.Duration("min-age", 0, "only transactions at least this old")
		limit := sub.Int("limit", 100, "page size (1..1000)")
		page := sub.String("page", "", "page token printed by the previous page")
		if err := sub.Parse(rest); err != nil {
			return err
		}
		req := &adminv1.ListTransactionsRequest{NeedsAttention: *attention, MinAgeSeconds: int64(minAge.Seconds()),
			PageSize: int32(*limit), PageToken: *page}
		if *state != "" {
			v, ok := tccv1.TransactionState_value["TRANSACTION_STATE_"+strings.ToUpper(*state)]
			if !ok {
				return fmt.Errorf("admin list: unknown state %q", *state)
			}
			req.State = tccv1.TransactionState(v)
		}
		resp, err := client.ListTransactions(ctx, req)
		if err != nil {
			return fmt.Errorf("admin list: %w", err)
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
	case "show":
		if err := sub.Parse(rest); err != nil {
			return err
		}
		resp, err := client.GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: *gid})
		if err != nil {
			return fmt.Errorf("admin show: %w", err)
		}
		printTransaction(stdout, resp.GetTransaction(), resp.GetBranchDetails(), resp.GetLeaseOwner())
		return nil
	case "retry":
		if err := sub.Parse(rest); err != nil {
			return err
		}
		resp, err := client.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: *gid})
		if err != nil {
			return fmt.Errorf("admin retry: %w", err)
		}
		fmt.Fprintf(stdout, "%s is due now (%s)\n", *gid, stateName(resp.GetTransaction().GetState()))
		return nil
	case "resolve":
		branch := sub.String("branch", "", "branch id")
		state := sub.String("state", "", "confirmed or cancelled: what the participant's data now reflects")
		reason := sub.String("reason", "", "why, and who decided (required)")
		if err := sub.Parse(rest); err != nil {
			return err
		}
		v, ok := tccv1.BranchState_value["BRANCH_STATE_"+strings.ToUpper(*state)]
		if !ok {
			return fmt.Errorf("admin resolve: -state must be confirmed or cancelled, not %q", *state)
		}
		resp, err := client.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: *gid, BranchId: *branch,
			State: tccv1.BranchState(v), Reason: *reason})
		if err != nil {
			return fmt.Errorf("admin resolve: %w", err)
		}
		fmt.Fprintf(stdout, "branch %s of %s resolved as %s; transaction is %s\n", *branch, *gid, strings.ToUpper(*state),
			stateName(resp.GetTransaction().GetState()))
		return nil
	}
	fs.Usage()
	return fmt.Errorf("admin: unknown command %q", cmd)
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
