# hubauthz: `make demo` shows the rule on a private dockerd and JupyterHub;
# `make test` runs every test. Both install what they need (as root).

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
APT_PKGS  := docker.io jupyterhub busybox-static curl systemd ca-certificates
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PLUGIN_DIR  ?= build/plugin
PLUGIN      ?= hubauthz
PREFIX      ?= /usr/local
SYSTEMD_DIR ?= /etc/systemd/system

.PHONY: all build deps test fuzz bench lint demo clean plugin plugin-create plugin-push install uninstall

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hubauthz ./cmd/hubauthz

# deps installs the Debian packages the real-component tests and the demo
# need, when they are missing and we are root, and fetches the Go modules.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run as root to install them)"; \
	  fi; \
	fi
	$(GO) mod download

test: deps
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=10s

# fuzz runs each fuzz target for FUZZTIME; go test -fuzz takes one package
# and one target at a time. Seed corpora: authz/testdata/fuzz/<target>.
FUZZTIME ?= 2m
fuzz:
	$(GO) test ./authz -run='^$$' -fuzz='^FuzzResolve$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./authz -run='^$$' -fuzz='^FuzzParseRoute$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./authz -run='^$$' -fuzz='^FuzzDecideCreate$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./authz -run='^$$' -fuzz='^FuzzDecideBody$$' -fuzztime=$(FUZZTIME)

# bench measures what docs/performance.md records: the decision core (go test
# -bench), then, against a real JupyterHub and private dockerds, bin/hubauthz
# against a null plugin over the socket, memory after a million requests, hub
# requests under load and docker create with and without the plugin. About
# five minutes; the end-to-end tables are also written to BENCH_OUT.
BENCH_OUT ?= /tmp/hubauthz-bench.md
bench: deps build
	$(GO) test ./authz -run='^$$' -bench='^Benchmark(Decide|DecodeCreate)' -benchmem -benchtime=300ms -count=6
	rm -f $(BENCH_OUT)
	HUBAUTHZ_BENCH=1 HUBAUTHZ_BENCH_BINARY=$(CURDIR)/bin/hubauthz HUBAUTHZ_BENCH_OUT=$(BENCH_OUT) \
	  $(GO) test ./e2e -count=1 -timeout 30m -run='^TestBench$$'
	@cat $(BENCH_OUT)

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo: deps build
	bash e2e/demo.sh

# plugin assembles the managed plugin: config.json and a rootfs holding the
# static binary and CA certificates. No registry and no docker build.
plugin: build
	rm -rf $(PLUGIN_DIR)
	mkdir -p $(PLUGIN_DIR)/rootfs/etc/ssl/certs $(PLUGIN_DIR)/rootfs/run/docker/plugins $(PLUGIN_DIR)/rootfs/host $(PLUGIN_DIR)/rootfs/tmp
	cp config.json $(PLUGIN_DIR)/config.json
	cp bin/hubauthz $(PLUGIN_DIR)/rootfs/hubauthz
	cp /etc/ssl/certs/ca-certificates.crt $(PLUGIN_DIR)/rootfs/etc/ssl/certs/

plugin-create: plugin
	docker plugin create $(PLUGIN) $(PLUGIN_DIR)

# plugin-push PLUGIN=registry.example:5000/hubauthz:1.0
plugin-push: plugin
	docker plugin rm -f $(PLUGIN) 2>/dev/null || true
	docker plugin create $(PLUGIN) $(PLUGIN_DIR)
	docker plugin push $(PLUGIN)

# install puts the legacy-mode service in place: binary, systemd unit and
# env file (kept if it already exists, since it holds the token).
install: build
	install -D -m 0755 bin/hubauthz $(DESTDIR)$(PREFIX)/sbin/hubauthz
	install -D -m 0644 plugin/hubauthz.service $(DESTDIR)$(SYSTEMD_DIR)/hubauthz.service
	sed -i 's|/usr/local/sbin/hubauthz|$(PREFIX)/sbin/hubauthz|' $(DESTDIR)$(SYSTEMD_DIR)/hubauthz.service
	test -e $(DESTDIR)/etc/hubauthz/hubauthz.env || install -D -m 0600 plugin/hubauthz.env $(DESTDIR)/etc/hubauthz/hubauthz.env
	@echo "edit /etc/hubauthz/hubauthz.env, then: systemctl daemon-reload && systemctl enable --now hubauthz"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/hubauthz $(DESTDIR)$(SYSTEMD_DIR)/hubauthz.service
	@echo "kept /etc/hubauthz (it holds the token); remove it by hand if you no longer need it"

clean:
	rm -rf bin build
