package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstallLegacyService checks what make install puts in place for
// legacy mode, and that make uninstall keeps the env file (it holds the
// token).
func TestMakeInstallLegacyService(t *testing.T) {
	dest := t.TempDir()
	mk := func(target string) {
		t.Helper()
		if out, err := exec.Command("make", "-C", "..", target, "DESTDIR="+dest).CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	mk("install")
	bin := filepath.Join(dest, "usr/local/sbin/hubauthz")
	unit := filepath.Join(dest, "etc/systemd/system/hubauthz.service")
	env := filepath.Join(dest, "etc/hubauthz/hubauthz.env")
	for path, mode := range map[string]os.FileMode{bin: 0o755, unit: 0o644, env: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, mode %v; want mode %v", path, err, fi.Mode().Perm(), mode)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "hubauthz ") {
		t.Fatalf("installed binary: %v %q", err, out)
	}
	u, _ := os.ReadFile(unit)
	for _, want := range []string{"ExecStart=/usr/local/sbin/hubauthz serve", "EnvironmentFile=/etc/hubauthz/hubauthz.env", "Before=docker.service", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(u), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// A reinstall must not overwrite the env file, which holds the token.
	if err := os.WriteFile(env, []byte("JUPYTERHUB_API_TOKEN=kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mk("install")
	mk("uninstall")
	if b, _ := os.ReadFile(env); string(b) != "JUPYTERHUB_API_TOKEN=kept\n" {
		t.Fatalf("env file after reinstall and uninstall: %q", b)
	}
	for _, gone := range []string{bin, unit} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still there after uninstall", gone)
		}
	}
}
