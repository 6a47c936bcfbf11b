package hub

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// These tests speak to a real JupyterHub (Debian's jupyterhub package).

const group = hubtest.PrivilegedGroup

// leastPrivilege is the role documented in docs/jupyterhub.md.
var leastPrivilege = []string{"read:groups!group=" + group, "admin:groups!group=" + group}

func realHub(t *testing.T, jh *hubtest.Hub, recreated *atomic.Int64) *Hub {
	t.Helper()
	h, err := New(Config{URL: jh.APIURL, Token: jh.Token, Timeout: 5 * time.Second, TTL: time.Minute,
		OnRecreate: func(g string) {
			if recreated != nil && g == group {
				recreated.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustMember(t *testing.T, h *Hub, user string, want bool) {
	t.Helper()
	ok, err := h.IsMember(context.Background(), group, user)
	if err != nil || ok != want {
		t.Fatalf("IsMember(%q) = %v, %v; want %v", user, ok, err, want)
	}
}

func TestRealHubMembership(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
	h := realHub(t, jh, nil)
	mustMember(t, h, "alice", true)
	mustMember(t, h, "bob", false)

	jh.AddMembers(t, group, "bob")
	mustMember(t, h, "bob", false) // cached for the TTL
	h.Flush()
	mustMember(t, h, "bob", true)
}

func TestRealHubGroupDeletedIsRecreated(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
	var recreated atomic.Int64
	h := realHub(t, jh, &recreated)
	mustMember(t, h, "alice", true)

	jh.DeleteGroup(t, group)
	h.Flush()
	mustMember(t, h, "alice", false)
	if !jh.GroupExists(t, group) || recreated.Load() != 1 {
		t.Fatalf("group exists %v, recreations reported %d; want a recreated group and 1 report", jh.GroupExists(t, group), recreated.Load())
	}
	if m := jh.Members(t, group); len(m) != 0 {
		t.Fatalf("recreated group has members %v", m)
	}
	// The empty answer after a recreation is not cached: a re-added member
	// counts at the next lookup.
	jh.AddMembers(t, group, "alice")
	mustMember(t, h, "alice", true)
}

func TestRealHubConcurrentRecreate(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
	// Two plugins (two Docker hosts) find the group gone at the same time.
	var recreated atomic.Int64
	a, b := realHub(t, jh, &recreated), realHub(t, jh, &recreated)
	jh.DeleteGroup(t, group)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 10; i++ {
		for _, h := range []*Hub{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.IsMember(context.Background(), group, "alice"); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("lookup during a concurrent recreate: %v", err)
	}
	if !jh.GroupExists(t, group) || recreated.Load() != 1 {
		t.Fatalf("group exists %v, recreations %d; want exactly one creator", jh.GroupExists(t, group), recreated.Load())
	}
	// The loser of the race is answered 409, which is success.
	created, err := a.client.createGroup(context.Background(), group)
	if err != nil || created {
		t.Fatalf("createGroup on an existing group = %v, %v; want 409 taken as success", created, err)
	}
}

func TestRealHubTokenWithoutScopeIsRefused(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{Scopes: []string{"read:users"}})
	h := realHub(t, jh, nil)
	ok, err := h.IsMember(context.Background(), group, "alice")
	if ok || err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("IsMember = %v, %v; want a 403 failure", ok, err)
	}
	if strings.Contains(err.Error(), jh.Token) {
		t.Fatalf("error %q leaks the token", err)
	}
}

func TestRealHubManageGroupsIsReportedPlainly(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{ManageGroups: true, Groups: map[string][]string{}})
	h := realHub(t, jh, nil)
	err := h.EnsureGroup(context.Background(), group)
	if err == nil || !strings.Contains(err.Error(), "manage_groups") {
		t.Fatalf("EnsureGroup = %v; want an error naming manage_groups", err)
	}
}

func TestRealHubEnsureGroupCreatesMissingGroup(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege, Groups: map[string][]string{}})
	if jh.GroupExists(t, group) {
		t.Fatal("the hub started with the group")
	}
	if err := realHub(t, jh, nil).EnsureGroup(context.Background(), group); err != nil {
		t.Fatal(err)
	}
	if !jh.GroupExists(t, group) {
		t.Fatal("EnsureGroup did not create the group")
	}
}
