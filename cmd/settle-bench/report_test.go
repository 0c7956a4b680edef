package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var l Latencies
	if got := l.Percentile(99); got != 0 {
		t.Fatalf("empty p99 = %v, want 0", got)
	}
	// 1ms..100ms in reverse order: nearest rank.
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{90, 90 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
	} {
		if got := l.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	var one Latencies
	one.Add(7 * time.Millisecond)
	if s := one.Summarize(); s.P50 != 7*time.Millisecond || s.P999 != 7*time.Millisecond || s.Max != 7*time.Millisecond || s.N != 1 {
		t.Errorf("single summary = %+v", s)
	}
	var m Latencies
	m.Add(3 * time.Millisecond)
	m.Merge(&one)
	m.Add(time.Millisecond)
	if got := m.Percentile(50); got != 3*time.Millisecond {
		t.Errorf("merged p50 = %v, want 3ms", got)
	}
	if got := m.Max(); got != 7*time.Millisecond {
		t.Errorf("merged max = %v, want 7ms", got)
	}
}

func TestReport(t *testing.T) {
	var total, commit Latencies
	for i := 1; i <= 1000; i++ {
		total.Add(time.Duration(i) * time.Microsecond * 10)
		commit.Add(time.Duration(i) * time.Microsecond)
	}
	r := &Report{Mode: "noop", Store: "mariadb", Concurrency: 10, Branches: 2, Duration: 10 * time.Second,
		Committed: 15000, Total: total.Summarize(), Commit: commit.Summarize(),
		Errors:   map[string]int{"commit Unavailable": 2, "begin DeadlineExceeded": 1},
		CPU:      map[string]float64{"coordinator": 3, "database": 4.5},
		DBStatus: map[string]float64{"Questions": 150000}, LoadAvg: "0.50 0.40 0.30", Started: 15010}
	if got := r.TPS(); got != 1500 {
		t.Errorf("TPS = %v, want 1500", got)
	}
	if got := r.ErrorCount(); got != 3 {
		t.Errorf("ErrorCount = %v, want 3", got)
	}
	var buf bytes.Buffer
	r.Write(&buf)
	out := buf.String()
	for _, want := range []string{
		"throughput: 1500 tx/s",
		"p99 9.90ms",
		"commit:      p50 0.50ms",
		"errors: begin DeadlineExceeded=1 commit Unavailable=2",
		"coordinator 0.200ms/tx (0.30 cores)",
		"Questions 10.00",
		"15010 started, 0 unfinished",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	line := r.TSV()
	if n, h := len(strings.Split(line, "\t")), len(strings.Split(TSVHeader, "\t")); n != h {
		t.Errorf("TSV has %d fields, header %d", n, h)
	}
	if !strings.HasPrefix(line, "-\tnoop\tmariadb\t10\t2\t1500\t5.00\t9.00\t9.90\t") {
		t.Errorf("TSV = %q", line)
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses.
	stat := "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 8 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 4.0 {
		t.Errorf("cpu = %v, want 4.0 (400 ticks)", got)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/r.tsv"
	lines := TSVHeader + "\n"
	for _, tps := range []string{"900", "1500", "1100"} {
		r := strings.Split(TSVHeader, "\t")
		for i := range r {
			r[i] = "1"
		}
		r[0], r[1], r[2], r[3], r[4], r[5] = "after", "noop", "mariadb", "10", "2", tps
		lines += strings.Join(r, "\t") + "\n"
	}
	lines += TSVHeader + "\n" // a second header (appended runs) is skipped
	r := strings.Split(TSVHeader, "\t")
	for i := range r {
		r[i] = "-"
	}
	r[0], r[1], r[2], r[3], r[4], r[5] = "before", "noop", "mariadb", "10", "2", "300"
	lines += strings.Join(r, "\t") + "\n"
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := summarize([]string{path}, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "| after | noop | mariadb | 10 | 2 | 1100 | 1 |") || !strings.HasSuffix(strings.TrimSpace(strings.Split(out, "\n")[2]), "| 3 |") {
		t.Errorf("median row wrong:\n%s", out)
	}
	if !strings.Contains(out, "| before | noop | mariadb | 10 | 2 | 300 | - |") {
		t.Errorf("before row wrong:\n%s", out)
	}
}
