package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// maxResponse bounds what is read of a hub answer.
const maxResponse = 4 << 20

// client speaks the two JupyterHub REST calls hubauthz needs.
type client struct {
	base  string // API URL without a trailing slash
	token string
	http  *http.Client
}

func newClient(cfg Config) (*client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub: API URL %q is not an http(s) URL", cfg.URL)
	}
	if u.User != nil {
		return nil, errors.New("hub: the API URL must not carry credentials; use the token setting")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the hub is local; never send the token through a proxy by accident
	if cfg.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("hub: read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("hub: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &client{
		base:  strings.TrimRight(cfg.URL, "/"),
		token: cfg.Token,
		http:  &http.Client{Transport: tr, Timeout: cfg.Timeout},
	}, nil
}

// errNoGroup is returned by getGroup when the hub answers 404.
var errNoGroup = errors.New("no such group")

// getGroup returns the members of group.
func (c *client) getGroup(ctx context.Context, group string) ([]string, error) {
	var g struct {
		Users *[]string `json:"users"`
	}
	status, msg, err := c.do(ctx, http.MethodGet, "/groups/"+url.PathEscape(group), nil, &g)
	switch {
	case err != nil:
		return nil, fmt.Errorf("hub: get group %q: %w", group, err)
	case status == http.StatusNotFound:
		return nil, errNoGroup
	case status != http.StatusOK:
		return nil, fmt.Errorf("hub: get group %q: %s", group, statusText(status, msg))
	case g.Users == nil:
		return nil, fmt.Errorf("hub: get group %q: the answer lists no users (the token needs the read:groups scope)", group)
	}
	return *g.Users, nil
}

// createGroup creates an empty group. An existing group (409) is success.
func (c *client) createGroup(ctx context.Context, group string) (created bool, err error) {
	status, msg, err := c.do(ctx, http.MethodPost, "/groups/"+url.PathEscape(group), []byte(`{"users":[]}`), nil)
	switch {
	case err != nil:
		return false, fmt.Errorf("hub: create group %q: %w", group, err)
	case status == http.StatusCreated:
		return true, nil
	case status == http.StatusConflict:
		return false, nil
	case status == http.StatusBadRequest && strings.Contains(strings.ToLower(msg), "disabled"):
		return false, fmt.Errorf("hub: create group %q: the hub manages groups through its authenticator (Authenticator.manage_groups), so the API may not create it: %s", group, statusText(status, msg))
	default:
		return false, fmt.Errorf("hub: create group %q: %s", group, statusText(status, msg))
	}
}

// do sends one request and decodes a JSON answer into out on 2xx. It
// returns the status and the hub's error message on other statuses.
func (c *client) do(ctx context.Context, method, path string, body []byte, out any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "token "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", describe(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", describe(err))
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		return resp.StatusCode, e.Message, nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, "", fmt.Errorf("the hub answered %d with invalid JSON: %w", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, "", nil
}

// describe turns a transport error into a short cause. It drops the
// *url.Error wrapper (method and URL) and names timeouts plainly.
func describe(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		return errors.New("the hub did not answer in time")
	}
	return err
}

func statusText(status int, msg string) string {
	s := fmt.Sprintf("the hub answered %d %s", status, http.StatusText(status))
	if msg != "" {
		s += ": " + msg
	}
	return s
}
