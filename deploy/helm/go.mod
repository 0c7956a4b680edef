// Tests of the Helm chart in ./settle, in a module of their own so that
// the YAML parser they use stays out of the coordinator's go.mod. Run from
// here: go test ./... (helm itself is the tool pinned in ../../tools/go.mod).
module github.com/settle-tcc/settle/deploy/helm

go 1.26.8

require sigs.k8s.io/yaml v1.6.0

require go.yaml.in/yaml/v2 v2.4.2 // indirect
