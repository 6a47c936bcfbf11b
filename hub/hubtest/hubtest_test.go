package hubtest

import (
	"encoding/json"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestHubGroups(t *testing.T) {
	h := Start(t, Options{})
	t.Logf("Start took %v", h.StartDuration)

	if got := h.Members(t, PrivilegedGroup); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Fatalf("initial members = %v, want [alice]", got)
	}
	h.AddMembers(t, PrivilegedGroup, "bob", "carol")
	if got := h.Members(t, PrivilegedGroup); !reflect.DeepEqual(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("after AddMembers = %v, want [alice bob carol]", got)
	}
	h.RemoveMembers(t, PrivilegedGroup, "alice", "carol")
	if got := h.Members(t, PrivilegedGroup); !reflect.DeepEqual(got, []string{"bob"}) {
		t.Fatalf("after RemoveMembers = %v, want [bob]", got)
	}
	h.DeleteGroup(t, PrivilegedGroup)
	if h.GroupExists(t, PrivilegedGroup) {
		t.Fatalf("group %s still exists after DeleteGroup", PrivilegedGroup)
	}
	h.CreateGroup(t, PrivilegedGroup)
	if got := h.Members(t, PrivilegedGroup); len(got) != 0 {
		t.Fatalf("recreated group has members %v, want none", got)
	}

	h.Stop(t)
	h.Stop(t) // idempotent
	if code, _, err := h.Do(h.Token, "GET", "/groups/"+PrivilegedGroup, nil); err == nil {
		t.Fatalf("hub still answers %d after Stop", code)
	}
	if h.proxyPid == 0 {
		t.Fatalf("proxy pid unknown")
	}
	if syscall.Kill(h.proxyPid, 0) == nil && isProxy(h.proxyPid) {
		t.Fatalf("configurable-http-proxy (pid %d) still running after Stop", h.proxyPid)
	}
}

func TestServiceScopes(t *testing.T) {
	// Both hubs run at the same time, which also shows that their ports do not collide.
	full := Start(t, Options{})
	narrow := Start(t, Options{Scopes: []string{"read:users"}})
	for _, c := range []struct {
		h    *Hub
		want int
	}{{full, 200}, {narrow, 403}} {
		code, body, err := c.h.Do(c.h.Token, "GET", "/groups/"+PrivilegedGroup, nil)
		if err != nil || code != c.want {
			t.Fatalf("GET /groups/%s with service token: %d %s (err %v), want %d", PrivilegedGroup, code, body, err, c.want)
		}
		t.Logf("%d %s", code, strings.TrimSpace(string(body)))
	}
	// The admin token still sees the group on the narrow hub.
	if got := narrow.Members(t, PrivilegedGroup); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Fatalf("members on narrow hub = %v, want [alice]", got)
	}
}

func TestManageGroups(t *testing.T) {
	h := Start(t, Options{ManageGroups: true})
	code, body, err := h.Do(h.AdminToken, "POST", "/groups/newgroup", nil)
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if jerr := json.Unmarshal(body, &msg); jerr != nil || code != 400 || !strings.Contains(msg.Message, "disabled") {
		t.Fatalf("POST /groups/newgroup with manage_groups: %d %s, want 400 ... disabled", code, body)
	}
	t.Logf("manage_groups answer: %d %q", code, msg.Message)
	if h.GroupExists(t, "newgroup") {
		t.Fatalf("newgroup was created despite manage_groups")
	}
}

func TestFreePort(t *testing.T) {
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

func TestStopAfterHubKilled(t *testing.T) {
	h := Start(t, Options{})
	proxy := h.proxyPid
	if proxy == 0 || !isProxy(proxy) {
		t.Fatalf("proxy pid %d not found", proxy)
	}
	// A SIGKILLed hub cannot stop its proxy, which runs in its own session.
	syscall.Kill(h.pid, syscall.SIGKILL)
	<-h.done
	if !isProxy(proxy) {
		t.Fatalf("proxy %d died with the hub; this test no longer covers the orphan case", proxy)
	}
	h.Stop(t)
	if isProxy(proxy) {
		t.Fatalf("configurable-http-proxy (pid %d) still running after Stop", proxy)
	}
}
