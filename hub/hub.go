// Package hub answers one question for hubauthz: is this user in that
// JupyterHub group? It asks the JupyterHub REST API, caches each group's
// members for a TTL, turns concurrent misses for a group into one hub
// request, and recreates the group when the hub no longer has it.
package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// Config configures a Hub.
type Config struct {
	URL          string        // JupyterHub API URL, e.g. http://127.0.0.1:8081/hub/api
	Token        string        // API token, sent as "Authorization: token ..."
	CAFile       string        // extra PEM roots for an https hub; system roots are always used
	Timeout      time.Duration // bound on one hub lookup, recreation included
	TTL          time.Duration // how long a group's members are cached
	ErrorBackoff time.Duration // how long a failed lookup is answered from memory; 0 means 1s
	// OnRecreate, if set, is called after the group was found missing and created again.
	OnRecreate func(group string)
	// Observer, if set, is told about every lookup and every hub request (for metrics).
	Observer Observer
}

// Observer is told what a Hub does. Its methods must be cheap and safe for
// concurrent use.
type Observer interface {
	Lookup(cached bool)                               // a lookup answered from memory, or not
	Request(op string, took time.Duration, err error) // one hub request: "get-group" or "create-group"
}

type nopObserver struct{}

func (nopObserver) Lookup(bool)                          {}
func (nopObserver) Request(string, time.Duration, error) {}

// Hub looks up group members in JupyterHub. It is safe for concurrent use.
type Hub struct {
	cfg      Config
	client   *client
	members  *expirable.LRU[string, map[string]struct{}]
	failures *expirable.LRU[string, error]
	flight   singleflight.Group
	gen      atomic.Uint64 // bumped by Flush; an answer fetched before a flush is not cached
}

// New returns a Hub for cfg. It does not contact the hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Timeout <= 0 || cfg.TTL <= 0 {
		return nil, errors.New("hub: timeout and TTL must be positive")
	}
	if cfg.ErrorBackoff <= 0 {
		cfg.ErrorBackoff = time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Hub{
		cfg:      cfg,
		client:   c,
		members:  expirable.NewLRU[string, map[string]struct{}](64, nil, cfg.TTL),
		failures: expirable.NewLRU[string, error](64, nil, cfg.ErrorBackoff),
	}, nil
}

// IsMember reports whether user is a member of group.
func (h *Hub) IsMember(ctx context.Context, group, user string) (bool, error) {
	m, err := h.lookup(ctx, group)
	if err != nil {
		return false, err
	}
	_, ok := m[user]
	return ok, nil
}

// Members returns the sorted members of group.
func (h *Hub) Members(ctx context.Context, group string) ([]string, error) {
	m, err := h.lookup(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m))
	for u := range m {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

// EnsureGroup makes sure group exists, creating it when it is missing.
func (h *Hub) EnsureGroup(ctx context.Context, group string) error {
	_, err := h.lookup(ctx, group)
	return err
}

// Flush forgets every cached answer, so that the next lookup asks the hub.
func (h *Hub) Flush() {
	h.gen.Add(1)
	h.members.Purge()
	h.failures.Purge()
}

// lookup answers from the cache, or joins the one hub request in flight for
// group. The request runs under its own timeout, so a caller that gives up
// does not cancel it for the others.
func (h *Hub) lookup(ctx context.Context, group string) (map[string]struct{}, error) {
	if m, ok := h.cached(group); ok {
		h.cfg.Observer.Lookup(true)
		return m, nil
	}
	if err, ok := h.failures.Get(group); ok {
		h.cfg.Observer.Lookup(true)
		return nil, err
	}
	h.cfg.Observer.Lookup(false)
	ch := h.flight.DoChan(group, func() (any, error) {
		if m, ok := h.cached(group); ok { // filled while this call was being set up
			return m, nil
		}
		fctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		defer cancel()
		m, err := h.fetch(fctx, group)
		if err != nil {
			h.failures.Add(group, err)
			return nil, err
		}
		return m, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(map[string]struct{}), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("hub: waiting for group %q: %w", group, ctx.Err())
	}
}

func (h *Hub) cached(group string) (map[string]struct{}, bool) {
	return h.members.Get(group)
}

// fetch asks the hub for group's members. A missing group is created again
// and counts as empty; that answer is not cached, so members added right
// after the recreation count at the next lookup.
func (h *Hub) fetch(ctx context.Context, group string) (map[string]struct{}, error) {
	gen := h.gen.Load()
	start := time.Now()
	users, err := h.client.getGroup(ctx, group)
	h.cfg.Observer.Request("get-group", time.Since(start), ignoreNoGroup(err))
	if errors.Is(err, errNoGroup) {
		start = time.Now()
		created, err := h.client.createGroup(ctx, group)
		h.cfg.Observer.Request("create-group", time.Since(start), err)
		if err != nil {
			return nil, err
		}
		if created && h.cfg.OnRecreate != nil {
			h.cfg.OnRecreate(group)
		}
		return map[string]struct{}{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := make(map[string]struct{}, len(users))
	for _, u := range users {
		m[u] = struct{}{}
	}
	if h.gen.Load() == gen { // a flush meanwhile means this answer may be stale
		h.members.Add(group, m)
	}
	return m, nil
}

// ignoreNoGroup reports a 404 as a successful request: the hub answered.
func ignoreNoGroup(err error) error {
	if errors.Is(err, errNoGroup) {
		return nil
	}
	return err
}
