module github.com/hanode/hanode/httpsession/routertest

go 1.26.0

require github.com/hanode/hanode v0.0.0-00010101000000-000000000000

require github.com/go-chi/chi/v5 v5.5.0

require github.com/google/uuid v1.6.0 // indirect

replace github.com/hanode/hanode => ../..
