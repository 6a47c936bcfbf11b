package authz

import (
	"context"
	"strings"
	"testing"
)

// withDriverObjects adds to the fake inspector the stored objects of the
// volume-driver cases: volumes of a host-path driver plugin (which mounts
// whatever directory its mountpoint option names) and of other drivers, and
// containers holding them, one per owner where OWNER stands in a name.
func withDriverObjects(fi *fakeInspector) *fakeInspector {
	for name, v := range map[string]Volume{
		"hostpathvol": {Driver: "hostpath", Options: map[string]string{"mountpoint": "/var/run"}},
		"trustedvol":  {Driver: "nfsplugin", Options: map[string]string{"type": "proc", "device": "/run"}},
		"noDriverVol": {Driver: "", Options: map[string]string{"type": "none", "o": "bind", "device": "/run"}},
		"upperLocal":  {Driver: "LOCAL"},
	} {
		v.Name = name
		fi.volumes[name] = v
	}
	for _, owner := range []string{"alice", "bob"} {
		labels := map[string]string{"hub.jupyter.org/username": owner}
		for name, c := range map[string]Container{
			"xvol-" + owner: {Binds: []string{"hostpathvol:/data"},
				MountPoints: []MountPoint{{Type: "volume", Name: "hostpathvol", Driver: "hostpath"}}},
			"xmount-" + owner: {Mounts: []MountSpec{{Type: "volume", Source: "hostpathvol"}},
				MountPoints: []MountPoint{{Type: "volume", Name: "hostpathvol", Driver: "hostpath"}}},
			"xgone-" + owner: {MountPoints: []MountPoint{{Type: "volume", Name: "removed-since", Driver: "hostpath"}}},
			"xdriver-" + owner: {VolumeDriver: "hostpath",
				MountPoints: []MountPoint{{Type: "volume", Name: "0123abcd", Driver: "hostpath"}}},
			"plain-" + owner: {MountPoints: []MountPoint{{Type: "volume", Name: "jupyterhub-user-bob", Driver: "local"}}},
		} {
			c.ID, c.Name, c.Labels = name+"-id", "/"+name, labels
			fi.containers[name] = c
		}
	}
	fi.containers["xvol-holder"] = Container{ID: "h01d", Name: "/xvol-holder",
		MountPoints: []MountPoint{{Type: "volume", Name: "hostpathvol", Driver: "hostpath"}}}
	return fi
}

// TestDecideVolumeDrivers covers volumes of drivers outside
// HUBAUTHZ_VOLUME_DRIVERS, in every way a driver reaches a container: they
// count as exposing every protected path, so the member alice is allowed
// (audited) and bob, outside the group, is refused with the driver named.
// OWNER in a body or URI is replaced by each user in turn.
func TestDecideVolumeDrivers(t *testing.T) {
	members := &fakeMembers{groups: map[string][]string{"docker-privileged": {"alice"}}}
	owner := `"Labels":{"hub.jupyter.org/username":"OWNER"}`
	const untrusted = `untrusted volume driver "hostpath"`
	trustHostpath := Config{VolumeDrivers: []string{"local", "hostpath"}}
	tests := []struct {
		name, uri, body string
		cfg             Config
		exposes         string // "" when nothing is exposed; else what the message names
	}{
		// HostConfig.VolumeDriver: the driver of new named volumes in Binds,
		// anonymous volumes and the image's VOLUMEs.
		{name: "VolumeDriver with a new named volume in Binds", body: `{` + owner + `,"HostConfig":{"VolumeDriver":"hostpath","Binds":["brand-new:/data"]}}`, exposes: untrusted},
		{name: "VolumeDriver with an anonymous volume", body: `{` + owner + `,"HostConfig":{"VolumeDriver":"hostpath","Binds":["/data"]}}`, exposes: untrusted},
		{name: "VolumeDriver alone, for the image's volumes", body: `{` + owner + `,"HostConfig":{"VolumeDriver":"hostpath"}}`, exposes: untrusted},
		{name: "top-level deprecated VolumeDriver", body: `{` + owner + `,"VolumeDriver":"hostpath","Binds":["brand-new:/data"]}`, exposes: untrusted},
		{name: "lower-case volumedriver key", body: `{` + owner + `,"hostconfig":{"volumedriver":"hostpath"}}`, exposes: untrusted},
		{name: "VolumeDriver local", body: `{` + owner + `,"HostConfig":{"VolumeDriver":"local","Binds":["brand-new:/data"]}}`},
		// Mounts[].VolumeOptions.DriverConfig.Name.
		{name: "Mounts DriverConfig.Name untrusted", body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Source":"brand-new","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"hostpath","Options":{"mountpoint":"/var/run"}}}}]}}`, exposes: untrusted},
		{name: "Mounts DriverConfig.Name untrusted, anonymous, no options", body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"hostpath"}}}]}}`, exposes: untrusted},
		{name: "service mount with DriverConfig.Name", uri: "/v1.41/services/create", body: `{"Name":"svc","TaskTemplate":{"ContainerSpec":{"Image":"bb",` + owner + `,"Mounts":[{"Type":"volume","Source":"v","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"hostpath","Options":{"mountpoint":"/var/run"}}}}]}}}`, exposes: untrusted},
		{name: "service update mount with DriverConfig.Name", uri: "/v1.41/services/svc/update?version=4", body: `{"TaskTemplate":{"ContainerSpec":{"Image":"bb",` + owner + `,"Mounts":[{"Type":"volume","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"hostpath"}}}]}}}`, exposes: untrusted},
		// An existing volume whose inspected driver is not trusted.
		{name: "existing volume of an untrusted driver via Binds", body: `{` + owner + `,"HostConfig":{"Binds":["hostpathvol:/data"]}}`, exposes: untrusted},
		{name: "existing volume of an untrusted driver via Mounts", body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Source":"hostpathvol","Target":"/data"}]}}`, exposes: untrusted},
		{name: "start of a stored container with a volume of an untrusted driver", uri: "/v1.41/containers/xvol-OWNER/start", exposes: untrusted},
		{name: "restart of a stored container with a volume mount of an untrusted driver", uri: "/v1.41/containers/xmount-OWNER/restart", exposes: untrusted},
		{name: "start of a stored container whose untrusted volume is gone", uri: "/v1.41/containers/xgone-OWNER/start", exposes: untrusted},
		{name: "start of a stored container created with an untrusted VolumeDriver", uri: "/v1.41/containers/xdriver-OWNER/start", exposes: untrusted},
		{name: "start with a VolumeDriver in the body (API before 1.24)", uri: "/v1.23/containers/plain-OWNER/start", body: `{"VolumeDriver":"hostpath"}`, exposes: untrusted},
		{name: "start of a stored container with a local volume", uri: "/v1.41/containers/plain-OWNER/start"},
		{name: "volumes-from a container with a volume of an untrusted driver", body: `{` + owner + `,"HostConfig":{"VolumesFrom":["xvol-holder:ro"]}}`, exposes: untrusted},
		// Names match exactly.
		{name: "LOCAL is not local, inline", body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"LOCAL"}}}]}}`, exposes: `untrusted volume driver "LOCAL"`},
		{name: "LOCAL is not local, VolumeDriver", body: `{` + owner + `,"HostConfig":{"VolumeDriver":"LOCAL"}}`, exposes: `untrusted volume driver "LOCAL"`},
		{name: "LOCAL is not local, existing volume", body: `{` + owner + `,"HostConfig":{"Binds":["upperLocal:/data"]}}`, exposes: `untrusted volume driver "LOCAL"`},
		// Trusted drivers.
		{name: "trusted via config: VolumeDriver", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"VolumeDriver":"hostpath","Binds":["brand-new:/data"]}}`},
		{name: "trusted via config: Mounts DriverConfig.Name, options not judged", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"hostpath","Options":{"type":"none","o":"bind","device":"/run"}}}}]}}`},
		{name: "trusted via config: existing volume", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"Binds":["hostpathvol:/data"]}}`},
		{name: "trusted via config: existing volume's options not judged", cfg: Config{VolumeDrivers: []string{"local", "nfsplugin"}}, body: `{` + owner + `,"HostConfig":{"Binds":["trustedvol:/data"]}}`},
		{name: "trusted via config: start of a stored container", cfg: trustHostpath, uri: "/v1.41/containers/xdriver-OWNER/start"},
		{name: "trusted via config: volumes-from", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"VolumesFrom":["xvol-holder"]}}`},
		// The local driver: options judged, whatever else is trusted.
		{name: "local unchanged: device still judged", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/run"}}}}]}}`, exposes: "/run"},
		{name: "local unchanged: type still judged", cfg: trustHostpath, body: `{` + owner + `,"HostConfig":{"VolumeDriver":"hostpath","Mounts":[{"Type":"volume","Target":"/p","VolumeOptions":{"DriverConfig":{"Options":{"type":"proc"}}}}]}}`, exposes: "type=proc"},
		{name: "local unchanged: stored volume's device still judged", body: `{` + owner + `,"HostConfig":{"Binds":["sockvol:/data"]}}`, exposes: "/run"},
		{name: "empty driver of an inspected volume is local", body: `{` + owner + `,"HostConfig":{"Binds":["noDriverVol:/data"]}}`, exposes: "/run"},
		{name: "plain local volume", body: `{` + owner + `,"HostConfig":{"Binds":["jupyterhub-user-bob:/data"]}}`},
		{name: "local left out of the trusted drivers", cfg: Config{VolumeDrivers: []string{"hostpath"}}, body: `{` + owner + `,"HostConfig":{"Binds":["jupyterhub-user-bob:/data"]}}`, exposes: `untrusted volume driver "local"`},
		{name: "local left out: inline local options", cfg: Config{VolumeDrivers: []string{"hostpath"}}, body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/t","VolumeOptions":{"DriverConfig":{"Options":{"type":"tmpfs","device":"tmpfs"}}}}]}}`, exposes: `untrusted volume driver "local"`},
		{name: "local left out: stored container with a local volume", cfg: Config{VolumeDrivers: []string{"hostpath"}}, uri: "/v1.41/containers/plain-OWNER/start", exposes: `untrusted volume driver "local"`},
		{name: "local left out: bind and tmpfs mounts are not volumes", cfg: Config{VolumeDrivers: []string{"hostpath"}}, body: `{` + owner + `,"HostConfig":{"Mounts":[{"Type":"bind","Source":"/home/OWNER","Target":"/home/jovyan"},{"Type":"tmpfs","Target":"/tmp"}]}}`},
	}
	for _, tt := range tests {
		for _, user := range []string{"alice", "bob"} {
			t.Run(tt.name+"/"+user, func(t *testing.T) {
				uri := createURI
				if tt.uri != "" {
					uri = strings.ReplaceAll(tt.uri, "OWNER", user)
				}
				body := strings.ReplaceAll(tt.body, "OWNER", user)
				a := testAuthorizerWith(t, members, withDriverObjects(newFakeInspector()), tt.cfg)
				d := a.Decide(context.Background(), Request{Method: "POST", URI: uri, Body: []byte(body)})
				allow, reason := true, ReasonNoExposure
				switch {
				case tt.exposes != "" && user == "bob":
					allow, reason = false, ReasonNotMember
				case tt.exposes != "":
					reason = ReasonMember
				}
				if d.Allow != allow || d.Reason != reason {
					t.Fatalf("Decide = allow %v reason %q (%s); want allow %v reason %q", d.Allow, d.Reason, d.Msg, allow, reason)
				}
				if tt.exposes == "" {
					return
				}
				if !d.Audited() || !strings.Contains(strings.Join(d.Sources(), "\n"), tt.exposes) {
					t.Errorf("audited %v, sources %q; want an audited decision naming %q", d.Audited(), d.Sources(), tt.exposes)
				}
				if !allow && !strings.Contains(d.Msg, tt.exposes) {
					t.Errorf("message %q does not name %q", d.Msg, tt.exposes)
				}
			})
		}
	}
}

// TestUntrustedVolumeDriverMessage pins the refusal a user outside the
// group sees for a volume driver that is not trusted.
func TestUntrustedVolumeDriverMessage(t *testing.T) {
	a := testAuthorizerWith(t, &fakeMembers{}, newFakeInspector(), Config{})
	d := a.Decide(context.Background(), Request{Method: "POST", URI: createURI,
		Body: []byte(`{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"VolumeDriver":"hostpath","Binds":["v:/data"]}}`)})
	want := `user "bob" is not in the JupyterHub group "docker-privileged", so untrusted volume driver "hostpath" (which reaches /var/run/docker.sock) cannot be mounted; ask a hub admin to add you to "docker-privileged", then restart your server.`
	if d.Msg != want {
		t.Fatalf("message\n%s\nwant\n%s", d.Msg, want)
	}
	if len(d.Exposures) != 1 || d.Exposures[0].Via != "VolumeDriver" {
		t.Fatalf("exposures %+v; want one, via VolumeDriver", d.Exposures)
	}
}
