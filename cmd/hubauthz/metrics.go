package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hubauthz/hubauthz/authz"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are hubauthz's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg            *prometheus.Registry
	decisions      *prometheus.CounterVec
	unguarded      prometheus.Counter // the hot path's counter, looked up once
	decodeFailures prometheus.Counter
	hubRequests    *prometheus.HistogramVec
	hubErrors      *prometheus.CounterVec
	cacheLookups   *prometheus.CounterVec
	recreations    prometheus.Counter
	inspections    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubauthz_decisions_total", Help: "Decisions by route, outcome (allow or deny) and reason.",
		}, []string{"route", "outcome", "reason"}),
		decodeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubauthz_request_decode_failures_total", Help: "Guarded requests whose body could not be read (denied).",
		}),
		hubRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hubauthz_hub_request_duration_seconds", Help: "JupyterHub API requests by operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		hubErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubauthz_hub_request_errors_total", Help: "JupyterHub API requests that failed, by operation.",
		}, []string{"op"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubauthz_membership_cache_lookups_total", Help: "Membership lookups by result: hit or miss.",
		}, []string{"result"}),
		recreations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubauthz_group_recreations_total", Help: "Times the group was missing from the hub and created again.",
		}),
		inspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubauthz_inspections_total", Help: "Docker API inspections by kind and result (cached, ok, not-found, error).",
		}, []string{"kind", "result"}),
	}
	m.unguarded = m.decisions.WithLabelValues(authz.RouteOther.String(), "allow", string(authz.ReasonUnguarded))
	m.reg.MustRegister(m.decisions, m.decodeFailures, m.hubRequests, m.hubErrors, m.cacheLookups, m.recreations, m.inspections)
	return m
}

// decision counts one decision.
func (m *metrics) decision(d authz.Decision) {
	if d.Allow && d.Route.Kind == authz.RouteOther {
		m.unguarded.Inc()
		return
	}
	outcome := "allow"
	if !d.Allow {
		outcome = "deny"
	}
	m.decisions.WithLabelValues(d.Route.Kind.String(), outcome, string(d.Reason)).Inc()
	if d.Reason == authz.ReasonBadBody {
		m.decodeFailures.Inc()
	}
}

// Lookup implements hub.Observer.
func (m *metrics) Lookup(cached bool) {
	if cached {
		m.cacheLookups.WithLabelValues("hit").Inc()
	} else {
		m.cacheLookups.WithLabelValues("miss").Inc()
	}
}

// Request implements hub.Observer.
func (m *metrics) Request(op string, took time.Duration, err error) {
	m.hubRequests.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.hubErrors.WithLabelValues(op).Inc()
	}
}

// inspection counts one Docker API inspection.
func (m *metrics) inspection(kind string, cached bool, err error) {
	result := "ok"
	switch {
	case cached:
		result = "cached"
	case errors.Is(err, authz.ErrNotFound):
		result = "not-found"
	case err != nil:
		result = "error"
	}
	m.inspections.WithLabelValues(kind, result).Inc()
}

// serveMetrics serves /metrics and /healthz on addr until ctx ends.
func (m *metrics) serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return l.Addr(), done, nil
}
