// Package routertest checks that httpsession works unchanged with
// third-party routers. It is a module of its own so that the routers stay
// out of hanode's dependencies.
package routertest
