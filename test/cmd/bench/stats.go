package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of d by nearest
// rank, or 0 for no samples. d is not modified.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ms converts a duration to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runs is one figure measured once per repeated run.
type runs []float64

// median returns the middle value (the mean of the two middle ones for an
// even count), or NaN for no runs.
func (r runs) median() float64 {
	if len(r) == 0 {
		return math.NaN()
	}
	s := slices.Clone(r)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (r runs) min() float64 {
	if len(r) == 0 {
		return math.NaN()
	}
	return slices.Min(r)
}

func (r runs) max() float64 {
	if len(r) == 0 {
		return math.NaN()
	}
	return slices.Max(r)
}

// format renders the median with min and max: "12.3 (11.9…13.1)", or the
// value alone when every run gave the same. prec is the number of decimals;
// sign adds "+" to positive numbers.
func (r runs) format(prec int, sign bool) string { return r.formatUnit(prec, sign, "") }

// formatUnit is format with a unit after each number but the extremes:
// "12.3 ms (11.9…13.1)".
func (r runs) formatUnit(prec int, sign bool, unit string) string {
	if len(r) == 0 {
		return "n/a"
	}
	f := func(v float64) string {
		s := fmt.Sprintf("%.*f", prec, v)
		if sign && !strings.HasPrefix(s, "-") {
			s = "+" + s
		}
		return s
	}
	med, lo, hi := f(r.median()), f(r.min()), f(r.max())
	if lo == hi {
		return med + unit
	}
	return fmt.Sprintf("%s%s (%s…%s)", med, unit, lo, hi)
}

// ratios divides a by b run by run (the runs are paired: measured one
// after the other).
func ratios(a, b runs) runs {
	out := make(runs, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		out = append(out, a[i]/b[i])
	}
	return out
}

// diffs subtracts b from a run by run.
func diffs(a, b runs) runs {
	out := make(runs, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		out = append(out, a[i]-b[i])
	}
	return out
}
