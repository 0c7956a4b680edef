package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Latencies is a set of recorded durations. The zero value is empty and
// ready to use; it is not safe for concurrent use (each initiator keeps its
// own and they are merged at the end).
type Latencies struct {
	d      []time.Duration
	sorted bool
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.d = append(l.d, d)
	l.sorted = false
}

// Merge adds every duration of o.
func (l *Latencies) Merge(o *Latencies) {
	l.d = append(l.d, o.d...)
	l.sorted = false
}

// Len returns the number of durations.
func (l *Latencies) Len() int { return len(l.d) }

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest recorded duration such that at least p% of the durations are
// less or equal to it. It returns 0 for an empty set.
func (l *Latencies) Percentile(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	if !l.sorted {
		slices.Sort(l.d)
		l.sorted = true
	}
	rank := int(math.Ceil(p / 100 * float64(len(l.d))))
	rank = min(max(rank, 1), len(l.d))
	return l.d[rank-1]
}

// Max returns the largest duration, or 0.
func (l *Latencies) Max() time.Duration { return l.Percentile(100) }

// Summary is the latency line of a report.
type Summary struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

// Summarize computes the reported percentiles.
func (l *Latencies) Summarize() Summary {
	return Summary{N: l.Len(), P50: l.Percentile(50), P90: l.Percentile(90), P99: l.Percentile(99),
		P999: l.Percentile(99.9), Max: l.Max()}
}

func (s Summary) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max), s.N)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Report is the result of one run.
type Report struct {
	Label       string
	Mode        string
	Store       string
	Concurrency int
	Branches    int
	Duration    time.Duration // measured window
	Committed   int           // transactions committed inside the window
	Total       Summary       // whole transaction
	Commit      Summary       // Commit call alone (zero in baseline mode)
	// Stages are the other calls of a committed transaction, summed over
	// its branches (begin, register, try).
	Stages map[string]Summary
	// Errors counts failed calls by "stage code", e.g. "commit Unavailable".
	Errors map[string]int
	// CPU seconds used inside the window, by process label
	// ("coordinator", "database", "bench"), and the total of the machine.
	CPU        map[string]float64
	MachineCPU float64
	LoadAvg    string
	// DBStatus are deltas of database counters over the window (MariaDB
	// SHOW GLOBAL STATUS, or the coordinator's own statement counter).
	DBStatus map[string]float64
	// DBVars are database settings that matter for durability.
	DBVars map[string]string
	// Started is how many transactions were begun in the whole run
	// (warm-up included); Unfinished how many were not COMMITTED/ABORTED
	// when the drain check gave up; Drain how long after the load stopped
	// the last one finished.
	Started    int
	Unfinished int
	Drain      time.Duration
	Notes      []string
}

// TPS is committed transactions per second over the window.
func (r *Report) TPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Committed) / r.Duration.Seconds()
}

// ErrorCount is the number of failed calls.
func (r *Report) ErrorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Write prints the report for humans.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "mode=%s store=%s concurrency=%d branches=%d window=%s loadavg=%s\n",
		r.Mode, r.Store, r.Concurrency, r.Branches, r.Duration, r.LoadAvg)
	fmt.Fprintf(w, "throughput: %.0f tx/s (%d committed)\n", r.TPS(), r.Committed)
	fmt.Fprintf(w, "transaction: %s\n", r.Total)
	if r.Commit.N > 0 {
		fmt.Fprintf(w, "commit:      %s\n", r.Commit)
	}
	for _, k := range sortedKeys(r.Stages) {
		if s := r.Stages[k]; s.N > 0 {
			fmt.Fprintf(w, "  %s: p50 %s  p99 %s\n", k, ms(s.P50), ms(s.P99))
		}
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
	} else {
		fmt.Fprintf(w, "errors: %s\n", formatCounts(r.Errors))
	}
	if r.Committed > 0 {
		var parts []string
		for _, k := range sortedKeys(r.CPU) {
			parts = append(parts, fmt.Sprintf("%s %.3fms/tx (%.2f cores)", k, 1000*r.CPU[k]/float64(r.Committed), r.CPU[k]/r.Duration.Seconds()))
		}
		parts = append(parts, fmt.Sprintf("machine %.3fms/tx (%.2f cores)", 1000*r.MachineCPU/float64(r.Committed), r.MachineCPU/r.Duration.Seconds()))
		fmt.Fprintf(w, "cpu: %s\n", strings.Join(parts, ", "))
		if len(r.DBStatus) > 0 {
			var parts []string
			for _, k := range sortedKeys(r.DBStatus) {
				parts = append(parts, fmt.Sprintf("%s %.2f", k, r.DBStatus[k]/float64(r.Committed)))
			}
			fmt.Fprintf(w, "db per committed tx: %s\n", strings.Join(parts, ", "))
		}
	}
	if len(r.DBVars) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.DBVars) {
			parts = append(parts, k+"="+r.DBVars[k])
		}
		fmt.Fprintf(w, "db settings: %s\n", strings.Join(parts, " "))
	}
	if r.Started > 0 {
		fmt.Fprintf(w, "drain: %d started, %d unfinished, last finished %s after the load stopped\n",
			r.Started, r.Unfinished, r.Drain.Round(time.Millisecond))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// TSVHeader and TSV give one machine-readable line per run.
const TSVHeader = "label\tmode\tstore\tconc\tbranches\ttx_s\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms\tcommit_p99_ms\terrors\tcoord_ms_tx\tdb_ms_tx\tparts_ms_tx\tstmts_tx\tunfinished\tdrain_ms\tload1"

// TSV returns the run as one tab-separated line (see TSVHeader).
func (r *Report) TSV() string {
	per := func(v float64) string {
		if r.Committed == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", 1000*v/float64(r.Committed))
	}
	cpu := func(k string) string {
		v, ok := r.CPU[k]
		if !ok {
			return "-"
		}
		return per(v)
	}
	stmts := "-"
	if v, ok := r.DBStatus["statements"]; ok && r.Committed > 0 {
		stmts = fmt.Sprintf("%.2f", v/float64(r.Committed))
	} else if v, ok := r.DBStatus["Questions"]; ok && r.Committed > 0 {
		stmts = fmt.Sprintf("%.2f", v/float64(r.Committed))
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	load1, _, _ := strings.Cut(r.LoadAvg, " ")
	label := r.Label
	if label == "" {
		label = "-"
	}
	return strings.Join([]string{label, r.Mode, r.Store, fmt.Sprint(r.Concurrency), fmt.Sprint(r.Branches),
		fmt.Sprintf("%.0f", r.TPS()), f(r.Total.P50), f(r.Total.P90), f(r.Total.P99), f(r.Total.P999), f(r.Total.Max),
		f(r.Commit.P99), fmt.Sprint(r.ErrorCount()), cpu("coordinator"), cpu("database"), cpu("participants"), stmts,
		fmt.Sprint(r.Unfinished), fmt.Sprint(r.Drain.Milliseconds()), load1}, "\t")
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
