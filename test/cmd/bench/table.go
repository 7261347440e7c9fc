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
	// why explains a miss from the run's own figures; "" for rows whose
	// cause the notes' profile and step timings show.
	why string
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

// missedText lists the rows not met, each with what explains it: the
// row's own why, or where the notes show its time going.
func missedText(rows []row) string {
	var b strings.Builder
	for _, r := range rows {
		if r.met {
			continue
		}
		why := r.why
		if why == "" {
			why = noWhy
		}
		fmt.Fprintf(&b, "- **%s**: %s\n", cell(r.metric), why)
	}
	return b.String()
}

// noWhy is a missed row's explanation when the row has none of its own.
const noWhy = "no cause is computed from this run's figures; the notes below show where the time and memory go: the handler's CPU profile (pprof top entries), its replayed steps, the context switches, package initialisation and the memory breakdown."

// saturationWhy explains added latency at concurrency c > 1 by throughput:
// the senders keep c events in flight, so latency is c / throughput
// (Little's law) and any throughput ratio below 1 shows as added latency,
// floor × (floor's throughput / ours − 1) run by run, whatever the budget.
func saturationWhy(c int, ours, floor, oursTput, floorTput runs) string {
	implied := make(runs, 0, len(floor))
	for i := range min(len(ours), len(floor), len(oursTput), len(floorTput)) {
		implied = append(implied, floor[i]*(floorTput[i]/oursTput[i]-1))
	}
	return fmt.Sprintf("the senders keep %d events in flight, so latency is the other face of throughput (Little's law: latency = %d / throughput). Ours ran at %s the floor's throughput in these runs, which alone accounts for %s of added latency, against %s measured; the throughput rows hold the same runs to the throughput target.",
		c, c, ratioText(ratios(oursTput, floorTput)), implied.formatUnit(1, true, " ms"), diffs(ours, floor).formatUnit(1, true, " ms"))
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
