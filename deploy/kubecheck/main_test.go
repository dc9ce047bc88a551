package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// manifests renders deploy/k8s and the example Secret.
func manifests(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is needed to render the kustomization")
	}
	out, err := exec.Command("kubectl", "kustomize", "../k8s").Output()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile("../k8s/secret.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "---\n" + string(secret)
}

func check(t *testing.T, stream string) []string {
	t.Helper()
	docs, err := readDocs(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	set, problems := decode(docs)
	return append(problems, set.crossCheck()...)
}

func TestTheManifestsPass(t *testing.T) {
	if p := check(t, manifests(t)); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
}

func TestMistakesAreFound(t *testing.T) {
	good := manifests(t)
	for name, c := range map[string]struct{ old, new, want string }{
		"unknown field":      {"readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", "unknown field"},
		"wrong type":         {"replicas: 2", "replicas: two", "replicas"},
		"liveness on readyz": {"path: /healthz", "path: /readyz", "liveness probe must GET /healthz"},
		"missing configmap":  {"configMapRef:\n            name: loyalty\n", "configMapRef:\n            name: loyalty-cfg\n", `ConfigMap "loyalty-cfg"`},
		"selector mismatch":  {"matchLabels:\n      app.kubernetes.io/component: worker\n", "matchLabels:\n      app.kubernetes.io/component: workers\n", "selector does not match"},
		"ingress to nowhere": {"service:\n            name: loyalty-api", "service:\n            name: loyalty-apx", "Service that does not exist"},
		"bad port name":      {"targetPort: http", "targetPort: htp", `targetPort "htp"`},
	} {
		if !strings.Contains(good, c.old) {
			t.Fatalf("%s: the manifests no longer contain %q; update the test", name, c.old)
		}
		bad := strings.Replace(good, c.old, c.new, 1)
		if p := strings.Join(check(t, bad), "\n"); !strings.Contains(p, c.want) {
			t.Errorf("%s: want a problem with %q, got:\n%s", name, c.want, p)
		}
	}
}
