package authz

import (
	"bytes"
	"fmt"
)

// ReadBody routes a request and decodes its body exactly as Decide does,
// and does nothing else: no rule, no hub, no inspection. It is the floor
// the load benchmarks measure hubauthz against (authzload null
// -read-body): what reading a Docker request body with encoding/json into
// moby's types costs any plugin, before it decides anything.
func ReadBody(method, uri string, body []byte) error {
	route, ok := ParseRoute(method, uri)
	if !ok {
		return fmt.Errorf("cannot route %s %q", method, uri)
	}
	var err error
	switch route.Kind {
	case RouteContainerCreate:
		_, err = decodeCreate(body)
	case RouteServiceCreate, RouteServiceUpdate:
		_, err = decodeService(body)
	case RouteContainerStart, RouteContainerRestart:
		if len(bytes.TrimSpace(body)) > 0 {
			_, err = decodeCreate(body)
		}
	}
	return err
}
