// Package load drives Docker authorization plugins the way dockerd does:
// AuthZPlugin.AuthZReq posted over the plugin's unix socket, on kept-alive
// connections, with the Docker API request JSON-encoded and its body in
// base64. It is the engine of cmd/authzload and of the end-to-end
// benchmarks in e2e/bench_test.go.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/docker/go-plugins-helpers/authorization"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OwnerLabel is the label DockerSpawner sets and hubauthz reads by default.
const OwnerLabel = "hub.jupyter.org/username"

// Kind is one kind of Docker API request, as dockerd forwards it to an
// authorization plugin. Its wire payload is marshaled once, so that the
// generator's own cost is the same for every target and every request.
type Kind struct {
	Name    string
	Method  string
	URI     string
	Body    []byte
	payload []byte
}

// NewKind builds a request kind. Headers are those a Docker client sends;
// dockerd forwards them, flattened, with the request.
func NewKind(name, method, uri string, body []byte) Kind {
	h := map[string]string{"User-Agent": "docker-sdk-python/6.1.3"}
	if len(body) > 0 {
		h["Content-Type"] = "application/json"
		h["Content-Length"] = strconv.Itoa(len(body))
	}
	p, err := json.Marshal(authorization.Request{RequestMethod: method, RequestURI: uri, RequestBody: body, RequestHeaders: h})
	if err != nil {
		panic(err) // a struct of strings and bytes always marshals
	}
	return Kind{Name: name, Method: method, URI: uri, Body: body, payload: p}
}

// The request kinds of the benchmark, in report order.
const (
	CreateNoSocket        = "create-no-socket"
	CreateSocketMember    = "create-socket-member"
	CreateSocketNonMember = "create-socket-nonmember"
	ContainerList         = "container-list"
	StartCached           = "start-cached"
)

// StandardKinds returns the benchmark's request kinds, built from the
// DockerSpawner bodies in testdata (authz/testdata in this repository):
// a create without the socket (bob), with the socket for a member (alice)
// and for a non-member (bob), a container list and, when startID is set,
// the start of that stored container.
func StandardKinds(testdata, startID string) ([]Kind, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(testdata, name)) }
	var kinds []Kind
	for _, k := range []struct{ name, user, file string }{
		{CreateNoSocket, "bob", "dockerspawner-create.json"},
		{CreateSocketMember, "alice", "dockerspawner-create-socket-alice.json"},
		{CreateSocketNonMember, "bob", "dockerspawner-create-socket-bob.json"},
	} {
		b, err := read(k.file)
		if err != nil {
			return nil, err
		}
		kinds = append(kinds, NewKind(k.name, "POST", "/v1.41/containers/create?name=jupyter-"+k.user, b))
	}
	kinds = append(kinds, NewKind(ContainerList, "GET", "/v1.41/containers/json?all=1", nil))
	if startID != "" {
		kinds = append(kinds, NewKind(StartCached, "POST", "/v1.41/containers/"+startID+"/start", nil))
	}
	return kinds, nil
}

// SpawnerBody rewrites a DockerSpawner create body (template) for user:
// owner label, JUPYTERHUB_USER, the user's named volume and, when socket is
// set, a bind of socket to /var/run/docker.sock. image, when set, replaces
// the image and the command becomes "true", so that dockerd can create it.
func SpawnerBody(template []byte, user, socket, image string) ([]byte, error) {
	var b map[string]any
	if err := json.Unmarshal(template, &b); err != nil {
		return nil, err
	}
	b["Labels"] = map[string]string{OwnerLabel: user, "org.jupyter.service": "jupyterhub"}
	b["Env"] = []string{"JUPYTERHUB_USER=" + user, "JUPYTERHUB_API_URL=http://127.0.0.1:1/hub/api",
		"JUPYTERHUB_SERVICE_PREFIX=/user/" + user + "/", "JUPYTERHUB_CLIENT_ID=jupyterhub-user-" + user}
	hc, ok := b["HostConfig"].(map[string]any)
	if !ok {
		return nil, errors.New("the template has no HostConfig")
	}
	binds := []string{"jupyterhub-user-" + user + ":/home/jovyan/work:rw"}
	if socket != "" {
		binds = append(binds, socket+":/var/run/docker.sock:rw")
	}
	hc["Binds"] = binds
	if image != "" {
		b["Image"], b["Cmd"] = image, []string{"true"}
		hc["NetworkMode"], hc["PortBindings"] = "none", map[string]any{}
	}
	return json.Marshal(b)
}

// Client posts AuthZPlugin.AuthZReq to one plugin socket on kept-alive
// connections, as dockerd's plugin client does.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the plugin serving socket that keeps up
// to conns idle connections (one per concurrent caller keeps every caller
// on its own warm connection).
func NewClient(socket string, conns int) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Response is the plugin's answer.
type Response struct {
	Allow bool
	Msg   string
	Err   string
}

// Send posts k and returns the plugin's answer.
func (c *Client) Send(ctx context.Context, k *Kind) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://plugin/AuthZPlugin.AuthZReq", bytes.NewReader(k.payload))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	req.Header.Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Response{}, fmt.Errorf("%s: %d %s", k.Name, resp.StatusCode, bytes.TrimSpace(data))
	}
	var r Response
	if err := json.Unmarshal(data, &r); err != nil {
		return Response{}, fmt.Errorf("%s: %w", k.Name, err)
	}
	return r, nil
}

// WithoutNamedVolumes returns k under a new name with the named-volume
// binds taken out of its create body, so that deciding it needs no Docker
// API inspection: a diagnostic, to separate the plugin's own cost from the
// cost of the inspections the rule makes.
func WithoutNamedVolumes(k Kind, name string) (Kind, error) {
	var b map[string]any
	if err := json.Unmarshal(k.Body, &b); err != nil {
		return Kind{}, err
	}
	if hc, ok := b["HostConfig"].(map[string]any); ok {
		binds, _ := hc["Binds"].([]any)
		kept := []any{}
		for _, v := range binds {
			if s, _ := v.(string); strings.HasPrefix(s, "/") {
				kept = append(kept, v)
			}
		}
		hc["Binds"] = kept
	}
	body, err := json.Marshal(b)
	if err != nil {
		return Kind{}, err
	}
	return NewKind(name, k.Method, k.URI, body), nil
}

// DiagnosticKinds derives, from the standard kinds, the creates without
// the socket and with it for a member, minus their named volumes
// (create-no-socket-novol, create-socket-member-novol).
func DiagnosticKinds(standard []Kind) ([]Kind, error) {
	var out []Kind
	for _, k := range standard {
		if k.Name == CreateNoSocket || k.Name == CreateSocketMember {
			d, err := WithoutNamedVolumes(k, k.Name+"-novol")
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}
