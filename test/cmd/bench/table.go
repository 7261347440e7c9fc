package main

import (
	"fmt"
	"strings"
)

// row is one line of the results table. Every figure in it is the median of
// repeated runs with their min and max.
type row struct {
	metric string
	ours   string
	floor  string
	ratio  string
	target string
	met    bool
}

// tableHeader is the header of the results table.
const tableHeader = "| metric | ours | floor | ratio | target | met |\n|---|---|---|---|---|---|\n"

// renderTable renders rows as one Markdown table.
func renderTable(rows []row) string {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			cell(r.metric), cell(r.ours), cell(r.floor), cell(r.ratio), cell(r.target), yesNo(r.met))
	}
	return b.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// ratioText renders run-by-run ratios: "0.53× (0.49…0.55)".
func ratioText(r runs) string { return r.formatUnit(2, false, "×") }

// addedText renders a latency ratio with the latency added over the floor:
// "1.92× (1.80…2.01), +4.1 ms (+3.8…+4.6)".
func addedText(ratio, added runs) string {
	return ratioText(ratio) + ", " + added.formatUnit(1, true, " ms")
}

// latencyRow compares latencies in milliseconds and meets its target when
// the median added latency is at most limit milliseconds; mark follows the
// target.
func latencyRow(metric string, ours, floor runs, limit float64, mark string) row {
	added := diffs(ours, floor)
	return row{
		metric: metric,
		ours:   ours.format(1, false),
		floor:  floor.format(1, false),
		ratio:  addedText(ratios(ours, floor), added),
		target: fmt.Sprintf("added ≤ %g ms%s", limit, mark),
		met:    added.median() <= limit,
	}
}
