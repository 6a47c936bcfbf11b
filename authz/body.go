package authz

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
)

// createBody is what the rule reads of a container create request, in the
// shape dockerd decodes it into (its ContainerConfigWrapper): Config fields
// at the top, HostConfig nested, and, from dockerd 20.10, host-config fields
// at the top level too when the nested HostConfig is absent; both are
// judged. Every field is the moby type of the field of the same name, so
// encoding/json reads it exactly as dockerd does (case-insensitive keys, the
// last duplicate winning, the same errors); the fields the rule does not
// read are skipped instead of built, which halves the cost of a create.
// FuzzDecodeCreateUnchanged holds it to a decode into the whole moby types.
type createBody struct {
	*CreateConfig
	InnerHostConfig *CreateHostConfig `json:"HostConfig,omitempty"`
	*CreateHostConfig
}

// CreateConfig is the part of container.Config the rule reads. It is
// exported only because encoding/json fills embedded pointers to exported
// types alone.
type CreateConfig struct {
	Image  string            // container.Config.Image
	Labels map[string]string // container.Config.Labels
	Env    []string          // container.Config.Env
}

// CreateHostConfig is the part of container.HostConfig the rule reads.
type CreateHostConfig struct {
	Binds        []string          // container.HostConfig.Binds
	Mounts       []mount.Mount     // container.HostConfig.Mounts
	VolumesFrom  []string          // container.HostConfig.VolumesFrom
	PidMode      container.PidMode // container.HostConfig.PidMode
	VolumeDriver string            // container.HostConfig.VolumeDriver
}

// errNoBody is returned for a guarded request whose body did not reach the
// plugin (dockerd forwards none for chunked, oversized or non-JSON bodies).
var errNoBody = errors.New("the request body was not forwarded to the plugin")

// errTrailing is returned for a body with more than one JSON value.
var errTrailing = errors.New("unexpected content after the JSON document")

// decodeJSON decodes body into v with encoding/json, exactly as dockerd
// does: keys match case-insensitively and the last duplicate wins. Content
// after the first JSON value is refused rather than ignored.
//
// A body that json.Unmarshal accepts (one JSON value, JSON whitespace
// around it) decodes to the same value through json.Unmarshal as through
// a json.Decoder, without the Decoder's buffer and copy; that is every
// body a Docker client sends. Anything else is decoded again, from zero,
// the Decoder's way, so that what is accepted and every error message
// stay exactly as they were.
func decodeJSON[T any](body []byte, v *T) error {
	if json.Unmarshal(body, v) == nil {
		return nil
	}
	var zero T
	*v = zero
	return decodeJSONSlow(body, v)
}

// decodeJSONSlow is decodeJSON for the bodies json.Unmarshal refuses.
func decodeJSONSlow(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errNoBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return errTrailing
	}
	return nil
}

// decodeCreate reads a container create body.
func decodeCreate(body []byte) (workload, error) {
	var b createBody
	if err := decodeJSON(body, &b); err != nil {
		return workload{}, err
	}
	var w workload
	if b.CreateConfig != nil {
		w.image, w.labels, w.env = b.Image, []map[string]string{b.Labels}, b.Env
	}
	for _, hc := range []*CreateHostConfig{b.InnerHostConfig, b.CreateHostConfig} {
		if hc != nil {
			w.binds = append(w.binds, hc.Binds...)
			w.mounts = append(w.mounts, mountSpecs(hc.Mounts)...)
			w.volumesFrom = append(w.volumesFrom, hc.VolumesFrom...)
			if hc.PidMode != "" {
				w.pidModes = append(w.pidModes, string(hc.PidMode))
			}
			if hc.VolumeDriver != "" {
				w.volumeDrivers = append(w.volumeDrivers, hc.VolumeDriver)
			}
		}
	}
	return w, nil
}

// decodeService reads a service create or update body (a ServiceSpec).
// The owner comes from the container spec's labels, then the service's
// labels, then the container spec's env.
func decodeService(body []byte) (workload, error) {
	var spec swarm.ServiceSpec
	if err := decodeJSON(body, &spec); err != nil {
		return workload{}, err
	}
	cs := spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return workload{labels: []map[string]string{spec.Labels}}, nil
	}
	return workload{image: cs.Image, labels: []map[string]string{cs.Labels, spec.Labels}, env: cs.Env,
		mounts: mountSpecs(cs.Mounts)}, nil
}

// mountSpecs keeps what the rule reads of API mounts.
func mountSpecs(ms []mount.Mount) []MountSpec {
	out := make([]MountSpec, 0, len(ms))
	for _, m := range ms {
		s := MountSpec{Type: string(m.Type), Source: m.Source}
		if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
			s.Driver, s.DriverOptions = m.VolumeOptions.DriverConfig.Name, m.VolumeOptions.DriverConfig.Options
		}
		out = append(out, s)
	}
	return out
}
