package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// summarize reads TSV result lines (as written by -tsv, header lines
// allowed anywhere) and prints, per configuration (every column up to
// "branches" plus any "label" column), the median of each numeric column
// as a Markdown table, with the number of runs.
func summarize(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("summarize: name TSV files")
	}
	var header []string
	groups := map[string][][]string{}
	var order []string
	for _, name := range args {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), "\t")
			if len(fields) < 5 {
				continue
			}
			if fields[0] == "mode" || fields[0] == "label" {
				header = fields
				continue
			}
			if header == nil || len(fields) != len(header) {
				continue
			}
			k := strings.Join(fields[:keyColumns(header)], "\t")
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], fields)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if header == nil {
		return fmt.Errorf("summarize: no header line found")
	}
	nk := keyColumns(header)
	fmt.Fprintf(stdout, "| %s | runs |\n", strings.Join(header, " | "))
	fmt.Fprintf(stdout, "|%s---|\n", strings.Repeat("---|", len(header)))
	for _, k := range order {
		rows := groups[k]
		out := append([]string{}, strings.Split(k, "\t")...)
		for c := nk; c < len(header); c++ {
			out = append(out, medianColumn(rows, c))
		}
		fmt.Fprintf(stdout, "| %s | %d |\n", strings.Join(out, " | "), len(rows))
	}
	return nil
}

// keyColumns is the number of leading columns that name a configuration.
func keyColumns(header []string) int {
	for i, h := range header {
		if h == "branches" {
			return i + 1
		}
	}
	return 1
}

// medianColumn returns the median of column c over rows (the lower middle
// value for an even count), or "-" if no value is numeric.
func medianColumn(rows [][]string, c int) string {
	var vals []float64
	var texts []string
	for _, r := range rows {
		v, err := strconv.ParseFloat(r[c], 64)
		if err != nil {
			continue
		}
		vals = append(vals, v)
		texts = append(texts, r[c])
	}
	if len(vals) == 0 {
		return "-"
	}
	idx := make([]int, len(vals))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return vals[idx[a]] < vals[idx[b]] })
	return texts[idx[(len(idx)-1)/2]]
}
