package dockertest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// busyboxRootfs caches the image tarball; it is the same for every daemon.
var busyboxRootfs struct {
	once sync.Once
	tar  []byte
	err  error
}

// importBusybox imports Image into the daemon with `docker import`.
func (d *Daemon) importBusybox(tl tools) error {
	busyboxRootfs.once.Do(func() {
		busyboxRootfs.tar, busyboxRootfs.err = busyboxTar(tl.busybox)
	})
	if busyboxRootfs.err != nil {
		return busyboxRootfs.err
	}
	_, stderr, err := d.docker(bytes.NewReader(busyboxRootfs.tar), "import", "-", Image)
	if err != nil {
		return fmt.Errorf("docker import: %v: %s", err, stderr)
	}
	return nil
}

// busyboxTar builds a root filesystem: /bin/busybox, a symlink in /bin for
// every applet (busybox --list), and minimal /etc/passwd, /etc/group, /tmp
// and /root.
func busyboxTar(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	now := time.Now()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = now
		if err == nil {
			err = tw.WriteHeader(h)
		}
		if err == nil && len(body) > 0 {
			_, err = tw.Write(body)
		}
	}
	for _, dir := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"root/", 0o700}, {"tmp/", 0o1777}} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: dir.name, Mode: dir.mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}, bin)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}, nil)
		}
	}
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	} {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, []byte(body))
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("build busybox rootfs: %w", err)
	}
	return buf.Bytes(), nil
}
