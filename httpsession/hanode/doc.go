// Package hanode turns high availability on in a Go application with the
// same settings as the `hanode run` daemon: the `ha` toggle, the node
// name, the cluster key file and the rest, read from flags, HANODE_*
// environment variables and a TOML config file, by precedence
// flag > environment > file > default.
//
// Load, FromFlags and FromEnv resolve the settings into a Config; every
// error wraps ErrConfig and names the flag, variable or file:line the bad
// value came from. Settings lists them all.
package hanode
