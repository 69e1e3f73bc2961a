module github.com/hanode/hanode/scripts/bench

go 1.26.0

require (
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/hanode/hanode v0.0.0-00010101000000-000000000000
)

replace github.com/hanode/hanode => ../..
