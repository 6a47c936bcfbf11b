package load

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Target is a plugin under load.
type Target struct {
	Name   string
	Socket string
	PID    int // the plugin's process, for its CPU time per request; 0 when unknown
}

// Options configures a comparison run.
type Options struct {
	Targets  []Target
	Baseline string // name of the target the others are compared to
	Kinds    []Kind
	Clients  []int         // concurrent clients per cell, e.g. 1 and 8
	Warmup   time.Duration // per target and cell, before the rounds
	Phase    time.Duration // one target's share of a round
	Rounds   int           // rounds per cell; 0: the smallest multiple of 2×targets from 16 up
}

// Sample is what one target did in one cell (kind x clients), pooled over
// the rounds.
type Sample struct {
	Kind     string
	Clients  int
	Target   string
	Requests int
	Allowed  int
	Errors   int
	FirstErr string
	Elapsed  time.Duration // wall time of the target's phases
	CPU      time.Duration // CPU time the target's process used in them (0 when its PID is unknown)
	Lat      []time.Duration
}

// count tallies one request's answer.
func (s *Sample) count(resp Response, err error) {
	s.Requests++
	switch {
	case err != nil:
		if s.Errors++; s.FirstErr == "" {
			s.FirstErr = err.Error()
		}
	case resp.Allow:
		s.Allowed++
	}
}

// CPUPerRequest is the plugin process's CPU time per request.
func (s *Sample) CPUPerRequest() time.Duration {
	if s.Requests == 0 {
		return 0
	}
	return s.CPU / time.Duration(s.Requests)
}

// ProcessCPU returns the CPU time that the threads of process pid have
// run, from /proc/PID/task/*/schedstat (nanoseconds, unlike the ticks of
// /proc/PID/stat).
func ProcessCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// Quantile returns the q-quantile of the latencies (nearest rank).
func (s *Sample) Quantile(q float64) time.Duration {
	if len(s.Lat) == 0 {
		return 0
	}
	if !slices.IsSorted(s.Lat) {
		slices.Sort(s.Lat)
	}
	i := int(q*float64(len(s.Lat))+0.5) - 1
	return s.Lat[max(0, min(i, len(s.Lat)-1))]
}

// RPS is the throughput: requests per second of wall time.
func (s *Sample) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// Run measures every kind at every client count on every target. Within a
// cell the targets take turns in rounds, in balanced orders (turnOrder),
// so that the noise of a shared machine falls on all of them alike.
func Run(ctx context.Context, o Options) ([]*Sample, error) {
	if o.Rounds <= 0 {
		cycle := 2 * len(o.Targets)
		o.Rounds = (16 + cycle - 1) / cycle * cycle
	}
	var out []*Sample
	for _, n := range o.Clients {
		clients := make([]*Client, len(o.Targets))
		for i, t := range o.Targets {
			clients[i] = NewClient(t.Socket, n)
			defer clients[i].Close()
		}
		for ki := range o.Kinds {
			k := &o.Kinds[ki]
			cell := make([]*Sample, len(o.Targets))
			for i, t := range o.Targets {
				cell[i] = &Sample{Kind: k.Name, Clients: n, Target: t.Name}
				if _, err := phase(ctx, clients[i], k, n, o.Warmup, nil, 0); err != nil {
					return nil, fmt.Errorf("warm-up of %s on %s: %w", k.Name, t.Name, err)
				}
			}
			for r := 0; r < o.Rounds; r++ {
				for _, i := range turnOrder(len(o.Targets), r) {
					if _, err := phase(ctx, clients[i], k, n, o.Phase, cell[i], o.Targets[i].PID); err != nil {
						return nil, err
					}
				}
			}
			out = append(out, cell...)
		}
	}
	return out, ctx.Err()
}

// turnOrder is the order in which n targets take their turns in round r:
// rotated by one target every round, and reversed every n rounds, so that
// over 2n rounds each target takes every position, and follows every
// other target, equally often (a position or a predecessor can favour a
// target by some percent on a shared machine).
func turnOrder(n, r int) []int {
	out := make([]int, n)
	for j := range out {
		out[j] = (j + r) % n
	}
	if (r/n)%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// phase sends k from n clients at once for d and adds what happened to s
// (nil for a warm-up), with the CPU time process pid used meanwhile.
func phase(ctx context.Context, c *Client, k *Kind, n int, d time.Duration, s *Sample, pid int) (*Sample, error) {
	if s == nil {
		s = &Sample{}
	}
	cpu0 := ProcessCPU(pid)
	defer func() { s.CPU += ProcessCPU(pid) - cpu0 }()
	lats := make([][]time.Duration, n)
	results := make([]Sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for g := 0; g < n; g++ {
		wg.Go(func() {
			r := &results[g]
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				resp, err := c.Send(ctx, k)
				lat = append(lat, time.Since(t0))
				r.count(resp, err)
			}
			lats[g] = lat
		})
	}
	wg.Wait()
	s.Elapsed += time.Since(start)
	for g := range results {
		s.Requests += results[g].Requests
		s.Allowed += results[g].Allowed
		s.Errors += results[g].Errors
		if s.FirstErr == "" {
			s.FirstErr = results[g].FirstErr
		}
		s.Lat = append(s.Lat, lats[g]...)
	}
	slices.Sort(s.Lat)
	if s.Errors > 0 {
		return s, fmt.Errorf("%s: %d of %d requests failed, first: %s", k.Name, s.Errors, s.Requests, s.FirstErr)
	}
	return s, ctx.Err()
}

// Drive sends n requests from clients concurrent callers, cycling through
// kinds, as fast as the target answers.
func Drive(ctx context.Context, c *Client, kinds []Kind, clients, n int) (*Sample, error) {
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
		s    = &Sample{Kind: "mixed", Clients: clients}
	)
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Go(func() {
			var r Sample
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					break
				}
				r.count(c.Send(ctx, &kinds[i%len(kinds)]))
			}
			mu.Lock()
			s.Requests += r.Requests
			s.Allowed += r.Allowed
			s.Errors += r.Errors
			if s.FirstErr == "" {
				s.FirstErr = r.FirstErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	s.Elapsed = time.Since(start)
	if s.Errors > 0 {
		return s, fmt.Errorf("%d of %d requests failed, first: %s", s.Errors, s.Requests, s.FirstErr)
	}
	return s, ctx.Err()
}

// ms formats a duration in milliseconds with three decimals (microseconds).
func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

// us formats a duration in microseconds, or "-" for zero (not measured).
func us(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))
}

// Report writes the samples as markdown: per kind and client count, each
// target's p50, p99 and throughput, and each target's ratios to the
// baseline (p50 and p99: target/baseline, lower is better; throughput:
// target/baseline, higher is better).
func Report(w io.Writer, samples []*Sample, baseline string) {
	type key struct {
		kind    string
		clients int
	}
	cells := map[key]map[string]*Sample{}
	var order []key
	var targets []string
	for _, s := range samples {
		k := key{s.Kind, s.Clients}
		if cells[k] == nil {
			cells[k] = map[string]*Sample{}
			order = append(order, k)
		}
		cells[k][s.Target] = s
		if !slices.Contains(targets, s.Target) {
			targets = append(targets, s.Target)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].clients < order[j].clients })
	for _, t := range targets {
		if t == baseline {
			continue
		}
		fmt.Fprintf(w, "| kind | clients | %[1]s p50 ms | %[2]s p50 ms | p50 × | %[1]s p99 ms | %[2]s p99 ms | p99 × | %[1]s req/s | %[2]s req/s | req/s × | %[1]s CPU µs/req | %[2]s CPU µs/req | requests (%[1]s / %[2]s) |\n", t, baseline)
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, k := range order {
			a, b := cells[k][t], cells[k][baseline]
			if a == nil || b == nil {
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.2f | %s | %s | %.2f | %.0f | %.0f | %.2f | %s | %s | %d / %d |\n",
				k.kind, k.clients,
				ms(a.Quantile(0.5)), ms(b.Quantile(0.5)), ratio(a.Quantile(0.5), b.Quantile(0.5)),
				ms(a.Quantile(0.99)), ms(b.Quantile(0.99)), ratio(a.Quantile(0.99), b.Quantile(0.99)),
				a.RPS(), b.RPS(), a.RPS()/b.RPS(), us(a.CPUPerRequest()), us(b.CPUPerRequest()), a.Requests, b.Requests)
		}
		fmt.Fprintln(w)
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
