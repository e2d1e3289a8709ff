// network-policy: the NetworkPolicy engine of the local platform's worker node - the controller of
// sigs.k8s.io/kube-network-policies (SIG Network's nftables + NFQUEUE engine), run on the host beside the kubelet
// and kube-proxy instead of as a DaemonSet: the same controller as its cmd/main.go starts, with a kubeconfig (the
// upstream command reads only the in-cluster configuration of a pod) and NRI off (the node's containerd serves no
// NRI socket; pod addresses come from the API server).
package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the engine's identity")
	nodeName := flag.String("hostname-override", "", "name of the Node whose pods this engine guards")
	queueID := flag.Int("nfqueue-id", 100, "number of the nfqueue the first packet of each connection goes to")
	metrics := flag.String("metrics-bind-address", "127.0.0.1:9080", "address of /metrics and /healthz")
	failOpen := flag.Bool("fail-open", false, "accept packets while the engine is not running")
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		klog.Fatal("--kubeconfig and --hostname-override are required")
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("reading %s: %v", *kubeconfig, err)
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatalf("creating the client: %v", err)
	}
	factory := informers.NewSharedInformerFactory(clientset, 0)
	controller, err := networkpolicy.NewController(
		clientset,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil,
		networkpolicy.Config{
			FailOpen:            *failOpen,
			QueueID:             *queueID,
			NodeName:            *nodeName,
			NetfilterBug1766Fix: true,
			NRIdisabled:         true,
		},
	)
	if err != nil {
		klog.Fatalf("starting the network policy controller: %v", err)
	}
	factory.Start(ctx.Done())
	// /healthz: the process serves. /readyz: its informers hold the cluster's policies, namespaces and pods - before
	// that no verdict can be right, and they sync only once the engine's identity may read them (the local_platform
	// role grants it, then waits on /readyz).
	synced := false
	var lock sync.Mutex
	http.Handle("/metrics", promhttp.Handler())
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		lock.Lock()
		defer lock.Unlock()
		if !synced {
			http.Error(w, "informers not synced: can the engine's identity list and watch networkpolicies, "+
				"namespaces and pods?", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	go func() {
		if err := http.ListenAndServe(*metrics, nil); err != nil {
			klog.Fatalf("serving %s: %v", *metrics, err)
		}
	}()
	go func() {
		for _, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return
			}
		}
		lock.Lock()
		synced = true
		lock.Unlock()
	}()
	// Run returns when the context ends (having removed its nftables table), or at once when it cannot open the
	// queue: then the process ends, so that the supervisor sees it down.
	if err := controller.Run(ctx); err != nil {
		klog.Fatalf("network policy controller: %v", err)
	}
}
