package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// createBody is a container create request as dockerd decodes it. Besides
// the current shape (Config fields at the top, HostConfig nested), dockerd
// 20.10 still reads host-config fields written at the top level when the
// nested HostConfig is absent; both are judged.
type createBody struct {
	*container.Config
	InnerHostConfig *container.HostConfig `json:"HostConfig,omitempty"`
	*container.HostConfig
}

// errNoBody is returned for a guarded request whose body did not reach the
// plugin (dockerd forwards none for chunked, oversized or non-JSON bodies).
var errNoBody = errors.New("the request body was not forwarded to the plugin")

// decodeCreate decodes a create body with encoding/json, exactly as dockerd
// does: keys match case-insensitively and the last duplicate wins. Content
// after the first JSON value is refused rather than ignored.
func decodeCreate(body []byte) (*createBody, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errNoBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var b createBody
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return nil, errors.New("unexpected content after the JSON document")
	}
	if b.Config == nil {
		b.Config = &container.Config{}
	}
	return &b, nil
}

// hostConfigs returns every host config the body carries.
func (b *createBody) hostConfigs() []*container.HostConfig {
	var out []*container.HostConfig
	for _, hc := range []*container.HostConfig{b.InnerHostConfig, b.HostConfig} {
		if hc != nil {
			out = append(out, hc)
		}
	}
	return out
}

// exposures lists every protected path that the body's host configs would
// put into the container.
func (pp ProtectedPaths) exposures(b *createBody) []Exposure {
	var out []Exposure
	add := func(via, source string) {
		if p, ok := pp.Exposes(source); ok {
			out = append(out, Exposure{Via: via, Source: source, Protected: p})
		}
	}
	for _, hc := range b.hostConfigs() {
		for _, bind := range hc.Binds {
			if src, _, ok := cutBindSource(bind); ok {
				add("HostConfig.Binds", src)
			}
		}
		for _, m := range hc.Mounts {
			add("HostConfig.Mounts", m.Source)
			if dev, ok := inlineDevice(m); ok {
				add("HostConfig.Mounts.VolumeOptions", dev)
			}
		}
	}
	return out
}

// cutBindSource splits a Binds entry "source:destination[:mode]". An entry
// with no colon is an anonymous volume and has no host source.
func cutBindSource(bind string) (source, rest string, ok bool) {
	return strings.Cut(bind, ":")
}

// inlineDevice returns the host device of a volume mount whose local-driver
// options are given inline (type=none, o=bind, device=/path). Any absolute
// device is judged, whatever the other options say.
func inlineDevice(m mount.Mount) (string, bool) {
	if m.VolumeOptions == nil || m.VolumeOptions.DriverConfig == nil {
		return "", false
	}
	dev := m.VolumeOptions.DriverConfig.Options["device"]
	return dev, dev != ""
}
