package authz

import (
	"fmt"
	"strings"
)

// ownerEnv is the variable that JupyterHub sets for every spawned server.
const ownerEnv = "JUPYTERHUB_USER"

// Owner is the hub user a container belongs to, and where that came from.
type Owner struct {
	User   string
	Source string // "label <key>" or "env JUPYTERHUB_USER"
}

// findOwner takes the owner from the first of labelKeys that is set in the
// label sets, else from JUPYTERHUB_USER in env. Sources that name different users are an
// error: the request has been tampered with. An empty Owner means the
// container is not a hub server.
func findOwner(labelSets []map[string]string, env []string, labelKeys []string) (Owner, error) {
	var found []Owner
	for _, labels := range labelSets {
		for _, k := range labelKeys {
			if v := labels[k]; v != "" {
				found = append(found, Owner{User: v, Source: "label " + k})
			}
		}
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == ownerEnv && v != "" {
			found = append(found, Owner{User: v, Source: "env " + ownerEnv})
		}
	}
	if len(found) == 0 {
		return Owner{}, nil
	}
	for _, o := range found[1:] {
		if o.User != found[0].User {
			return found[0], fmt.Errorf("the owner is ambiguous: %s says %q but %s says %q",
				found[0].Source, found[0].User, o.Source, o.User)
		}
	}
	return found[0], nil
}
