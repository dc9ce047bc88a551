// Command kubecheck validates Kubernetes manifests without a cluster, for
// .ci/deploy-checks (kubeconform needs schemas from the internet and
// `kubectl --dry-run` a server). Every document is decoded strictly into
// its k8s.io/api type, so an unknown or misspelt field or a value of the
// wrong type fails, and the objects are checked against each other:
// selectors match their pods, Services and Ingresses name ports and
// Services that exist, config comes from ConfigMaps and Secrets that exist,
// and the loyalty containers probe /healthz and /readyz.
//
//	kubectl kustomize deploy/k8s | go run . [extra.yaml ...]
//
// Extra files (e.g. secret.example.yaml) join the set being checked.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	docs, err := readDocs(os.Stdin)
	if err == nil {
		for _, f := range os.Args[1:] {
			var raw []byte
			if raw, err = os.ReadFile(f); err != nil {
				break
			}
			var more [][]byte
			if more, err = readDocs(bytes.NewReader(raw)); err != nil {
				break
			}
			docs = append(docs, more...)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(2)
	}
	set, problems := decode(docs)
	problems = append(problems, set.crossCheck()...)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "kubecheck:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("kubecheck: %d objects valid\n", set.count)
}

// readDocs splits a YAML stream into its non-empty documents.
func readDocs(r io.Reader) ([][]byte, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// objects are the decoded manifests by kind.
type objects struct {
	count        int
	deployments  []appsv1.Deployment
	jobs         []batchv1.Job
	services     []corev1.Service
	configMaps   map[string]bool
	secrets      map[string]bool
	ingresses    []networkingv1.Ingress
	pdbs         []policyv1.PodDisruptionBudget
	netpols      []networkingv1.NetworkPolicy
	serviceNames map[string]corev1.Service
}

func decode(docs [][]byte) (*objects, []string) {
	set := &objects{configMaps: map[string]bool{}, secrets: map[string]bool{}, serviceNames: map[string]corev1.Service{}}
	var problems []string
	for i, doc := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		where := fmt.Sprintf("%s %s/%s", head.APIVersion, head.Kind, head.Metadata.Name)
		for _, msg := range validation.IsDNS1123Subdomain(head.Metadata.Name) {
			problems = append(problems, fmt.Sprintf("%s: name: %s", where, msg))
		}
		strict := func(into any) bool {
			if err := yaml.UnmarshalStrict(doc, into); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
				return false
			}
			set.count++
			return true
		}
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			add(strict, &set.deployments)
		case "batch/v1 Job":
			add(strict, &set.jobs)
		case "v1 Service":
			if o, ok := add(strict, &set.services); ok {
				set.serviceNames[o.Name] = o
			}
		case "v1 ConfigMap":
			if o, ok := add(strict, new([]corev1.ConfigMap)); ok {
				set.configMaps[o.Name] = true
			}
		case "v1 Secret":
			if o, ok := add(strict, new([]corev1.Secret)); ok {
				set.secrets[o.Name] = true
			}
		case "networking.k8s.io/v1 Ingress":
			add(strict, &set.ingresses)
		case "networking.k8s.io/v1 NetworkPolicy":
			add(strict, &set.netpols)
		case "policy/v1 PodDisruptionBudget":
			add(strict, &set.pdbs)
		default:
			problems = append(problems, fmt.Sprintf("%s: a kind kubecheck does not know (add it)", where))
		}
	}
	return set, problems
}

// add decodes the document strictly as a T (through strict) and appends it
// to list; it returns the object and whether it decoded.
func add[T any](strict func(any) bool, list *[]T) (T, bool) {
	var o T
	if !strict(&o) {
		return o, false
	}
	*list = append(*list, o)
	return o, true
}

// crossCheck checks the objects against each other.
func (s *objects) crossCheck() []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	podLabels := map[string]map[string]string{} // pod templates by owner
	for _, d := range s.deployments {
		where := "Deployment/" + d.Name
		podLabels[where] = d.Spec.Template.Labels
		if d.Spec.Selector == nil {
			bad("%s: no selector", where)
		} else if sel, err := metaSelector(d.Spec.Selector.MatchLabels); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			bad("%s: the selector does not match the pod template's labels", where)
		}
		problems = append(problems, s.checkPod(where, d.Spec.Template.Spec, true)...)
	}
	for _, j := range s.jobs {
		where := "Job/" + j.Name
		if p := j.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyOnFailure && p != corev1.RestartPolicyNever {
			bad("%s: restartPolicy must be OnFailure or Never, not %q", where, p)
		}
		problems = append(problems, s.checkPod(where, j.Spec.Template.Spec, false)...)
	}
	matchesSomePod := func(sel map[string]string) bool {
		for _, l := range podLabels {
			if s, err := metaSelector(sel); err == nil && len(sel) > 0 && s.Matches(labels.Set(l)) {
				return true
			}
		}
		return false
	}
	for _, svc := range s.services {
		if !matchesSomePod(svc.Spec.Selector) {
			bad("Service/%s: its selector matches no Deployment's pods", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.String() != "" && p.TargetPort.IntValue() == 0 && !s.namedPortExists(svc.Spec.Selector, p.TargetPort.String()) {
				bad("Service/%s: targetPort %q is no container port of its pods", svc.Name, p.TargetPort.String())
			}
		}
	}
	for _, p := range s.pdbs {
		if p.Spec.Selector == nil || !matchesSomePod(p.Spec.Selector.MatchLabels) {
			bad("PodDisruptionBudget/%s: its selector matches no Deployment's pods", p.Name)
		}
	}
	for _, n := range s.netpols {
		if !matchesSomePod(n.Spec.PodSelector.MatchLabels) {
			bad("NetworkPolicy/%s: its podSelector matches no Deployment's pods", n.Name)
		}
	}
	for _, ing := range s.ingresses {
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service == nil {
					bad("Ingress/%s: path %s has no Service backend", ing.Name, p.Path)
					continue
				}
				svc, ok := s.serviceNames[p.Backend.Service.Name]
				if !ok {
					bad("Ingress/%s: path %s goes to a Service that does not exist", ing.Name, p.Path)
					continue
				}
				if name := p.Backend.Service.Port.Name; name != "" && !hasServicePort(svc, name) {
					bad("Ingress/%s: path %s names port %q, which Service/%s lacks", ing.Name, p.Path, name, svc.Name)
				}
			}
		}
	}
	return problems
}

// checkPod checks a pod template: its config sources exist, and a
// long-running loyalty container probes /healthz for liveness and /readyz
// for readiness.
func (s *objects) checkPod(where string, pod corev1.PodSpec, serving bool) []string {
	var problems []string
	for _, c := range pod.Containers {
		for _, from := range c.EnvFrom {
			if r := from.ConfigMapRef; r != nil && !s.configMaps[r.Name] && (r.Optional == nil || !*r.Optional) {
				problems = append(problems, fmt.Sprintf("%s: container %s reads ConfigMap %q, which is not defined", where, c.Name, r.Name))
			}
			if r := from.SecretRef; r != nil && !s.secrets[r.Name] && (r.Optional == nil || !*r.Optional) {
				problems = append(problems, fmt.Sprintf("%s: container %s reads Secret %q, which is not defined", where, c.Name, r.Name))
			}
		}
		if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
			problems = append(problems, fmt.Sprintf("%s: container %s must set allowPrivilegeEscalation: false", where, c.Name))
		}
		if !serving {
			continue
		}
		if path := probePath(c.LivenessProbe); path != "/healthz" {
			problems = append(problems, fmt.Sprintf("%s: container %s: the liveness probe must GET /healthz, not %q", where, c.Name, path))
		}
		if path := probePath(c.ReadinessProbe); path != "/readyz" {
			problems = append(problems, fmt.Sprintf("%s: container %s: the readiness probe must GET /readyz, not %q", where, c.Name, path))
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.IntValue() == 0 && !containerHasPort(c, p.HTTPGet.Port.String()) {
				problems = append(problems, fmt.Sprintf("%s: container %s probes port %q, which it does not declare", where, c.Name, p.HTTPGet.Port.String()))
			}
		}
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		problems = append(problems, where+": the pod must set runAsNonRoot: true")
	}
	return problems
}

func probePath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

func containerHasPort(c corev1.Container, name string) bool {
	for _, p := range c.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func hasServicePort(svc corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

// namedPortExists reports whether a container of the pods sel selects
// declares the port name.
func (s *objects) namedPortExists(sel map[string]string, name string) bool {
	for _, d := range s.deployments {
		if m, err := metaSelector(sel); err != nil || !m.Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if containerHasPort(c, name) {
				return true
			}
		}
	}
	return false
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, errors.New("empty selector")
	}
	return labels.SelectorFromValidatedSet(labels.Set(m)), nil
}
