package dockertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliTimeout bounds every docker CLI call and every raw API call.
const cliTimeout = 60 * time.Second

// Docker runs the docker CLI against the daemon (-H and DOCKER_HOST set to
// Host) with a private DOCKER_CONFIG and a timeout of 60 s. Other DOCKER_*
// variables of the environment are dropped. The error is the CLI's exit
// status (or the timeout); stderr holds the daemon's message.
func (d *Daemon) Docker(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return d.docker(nil, args...)
}

// MustDocker runs the docker CLI like Docker and returns its stdout. It
// fails the test, showing stderr, if the command fails.
func (d *Daemon) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	stdout, stderr, err := d.Docker(t, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, stderr, stdout)
	}
	return stdout
}

// docker runs the docker CLI with stdin.
func (d *Daemon) docker(stdin io.Reader, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.dockerPath, append([]string{"-H", d.Host}, args...)...)
	cmd.Env = d.cliEnv()
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", cliTimeout, err)
	}
	return stdout.String(), stderr.String(), err
}

// cliEnv is the environment for the docker CLI.
func (d *Daemon) cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"DOCKER_HOST="+d.Host,
		"DOCKER_CONFIG="+d.cliConfig,
		"DOCKER_CLI_HINTS=false",
	)
}

// API sends one raw HTTP/1.1 request over the daemon's socket and returns
// the status code and the whole response body. path is written verbatim as
// the request URI, so "/v1.41/containers%2Fcreate", "//containers/create"
// and query strings reach dockerd exactly as given. header is written as
// given (each key as spelled; Host defaults to "docker", Connection is
// "close"). With "Transfer-Encoding: chunked" in header, body is sent in
// chunks; otherwise, unless header sets Content-Length itself, body is read
// in full and sent with its length. A transport error fails the test.
func (d *Daemon) API(t testing.TB, method, path string, header http.Header, body io.Reader) (status int, respBody []byte) {
	t.Helper()
	status, respBody, err := d.rawAPI(method, path, header, body)
	if err != nil {
		t.Fatalf("dockertest: %s %s: %v", method, path, err)
	}
	return status, respBody
}

// rawAPI implements API.
func (d *Daemon) rawAPI(method, path string, header http.Header, body io.Reader) (int, []byte, error) {
	h := http.Header{}
	for k, v := range header {
		h[k] = v
	}
	chunked := strings.EqualFold(h.Get("Transfer-Encoding"), "chunked")
	var payload []byte
	if body != nil && !chunked && h.Get("Content-Length") == "" {
		var err error
		if payload, err = io.ReadAll(body); err != nil {
			return 0, nil, fmt.Errorf("read request body: %w", err)
		}
		body = nil
		h["Content-Length"] = []string{strconv.Itoa(len(payload))}
	}
	if h.Get("Host") == "" {
		h["Host"] = []string{"docker"}
	}
	h["Connection"] = []string{"close"}

	conn, err := net.DialTimeout("unix", d.Socket, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(cliTimeout))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\n", method, path)
	writeHeader(w, h)
	switch {
	case chunked:
		cw := httputil.NewChunkedWriter(w)
		if body != nil {
			if _, err := io.Copy(cw, body); err != nil {
				return 0, nil, fmt.Errorf("send chunked body: %w", err)
			}
		}
		cw.Close()
		w.WriteString("\r\n")
	case payload != nil:
		w.Write(payload)
	case body != nil:
		if _, err := io.Copy(w, body); err != nil {
			return 0, nil, fmt.Errorf("send body: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("read response body: %w", err)
	}
	return resp.StatusCode, b, nil
}

// writeHeader writes h with Host first and the other keys sorted, each key
// as spelled in the map.
func writeHeader(w *bufio.Writer, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		if k != "Host" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	keys = append([]string{"Host"}, keys...)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	w.WriteString("\r\n")
}

// ping checks that GET /_ping answers 200 OK.
func (d *Daemon) ping() error {
	status, body, err := d.rawAPI(http.MethodGet, "/_ping", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/_ping: %d %s", status, body)
	}
	return nil
}

// Reload rewrites daemon.json (nil writes {}) and sends SIGHUP to dockerd.
// It returns once dockerd has logged "Reloaded configuration" and answers
// /_ping again. A file that dockerd rejects, dockerd exiting (as it does,
// after about 15 s of retries, when an authorization plugin in the new file
// cannot be found) or no reload within 30 s fails the test. A key must not also be set by a flag
// given at Start (AuthzPlugins sets --authorization-plugin).
func (d *Daemon) Reload(t testing.TB, daemonJSON map[string]any) {
	t.Helper()
	if err := d.writeConfig(daemonJSON); err != nil {
		t.Fatalf("dockertest: reload: %v", err)
	}
	from := len(d.Log())
	if err := d.dockerd.signal(syscall.SIGHUP); err != nil {
		t.Fatalf("dockertest: reload: %v", err)
	}
	if err := d.waitReload(from, 30*time.Second); err != nil {
		t.Fatalf("dockertest: reload: %v\n--- dockerd log since SIGHUP ---\n%s", err, d.logSince(from))
	}
}

// waitReload waits for the outcome of a reload in the log written after
// offset from.
func (d *Daemon) waitReload(from int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		log := d.logSince(from)
		switch {
		case strings.Contains(log, "Reloaded configuration"):
			return d.waitReady(timeout)
		case strings.Contains(log, "level=fatal"),
			strings.Contains(log, "unable to configure the Docker daemon"),
			strings.Contains(log, "Error reconfiguring"):
			return errors.New("dockerd rejected the new configuration")
		case d.dockerd.exited():
			return fmt.Errorf("dockerd exited: %v", d.dockerd.err)
		case time.Now().After(deadline):
			return fmt.Errorf("no reload logged after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logSince returns the log written after byte offset from.
func (d *Daemon) logSince(from int) string {
	log := d.Log()
	if from > len(log) {
		return ""
	}
	return log[from:]
}
