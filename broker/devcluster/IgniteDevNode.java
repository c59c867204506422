// Owns one dev-cluster Ignite server node: configuration from the command line, readiness lines, stop on SIGTERM.
//
// Stdout protocol read by broker/devcluster/cluster.py:
//   IGNITE_STARTED idx=<i> port=<p>              Ignition.start returned (node joined or formed the ring)
//   IGNITE_READY idx=<i> port=<p> servers=<n>    server count reached --nodes (and state ACTIVE with --auth)
//   IGNITE_REBALANCED idx=<i> / IGNITE_REBALANCING idx=<i>
//                                                the cluster's "Rebalanced" metric as this node sees it,
//                                                printed after READY and on every change
// With --auth the node with --idx 0 activates the cluster once --nodes servers have joined.
// With --tx-aware-queries SQL joins the caller's transaction (thin-client feature bit 18): Ignite
// 2.17 does that only with the Calcite engine, whose jars maven.py puts on the class path then.
// KeyPrefixFilter (IgniteDevNode$KeyPrefixFilter) is a continuous-query remote filter on every dev
// node's class path, for the tests of remote filters (thin-client op 2006 builds it by class name).

import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import javax.cache.event.CacheEntryEvent;

import org.apache.ignite.Ignite;
import org.apache.ignite.Ignition;
import org.apache.ignite.cache.CacheEntryEventSerializableFilter;
import org.apache.ignite.cluster.ClusterState;
import org.apache.ignite.configuration.ClientConnectorConfiguration;
import org.apache.ignite.configuration.DataRegionConfiguration;
import org.apache.ignite.configuration.DataStorageConfiguration;
import org.apache.ignite.configuration.IgniteConfiguration;
import org.apache.ignite.configuration.QueryEngineConfiguration;
import org.apache.ignite.configuration.SqlConfiguration;
import org.apache.ignite.configuration.ThinClientConfiguration;
import org.apache.ignite.configuration.TransactionConfiguration;
import org.apache.ignite.internal.IgniteEx;
import org.apache.ignite.spi.metric.BooleanMetric;
import org.apache.ignite.spi.metric.Metric;
import org.apache.ignite.spi.communication.tcp.TcpCommunicationSpi;
import org.apache.ignite.spi.discovery.tcp.TcpDiscoverySpi;
import org.apache.ignite.spi.discovery.tcp.ipfinder.vm.TcpDiscoveryVmIpFinder;
import org.apache.ignite.ssl.SslContextFactory;

public final class IgniteDevNode {
    private static final String HOST = "127.0.0.1";
    private static final long MB = 1024L * 1024L;
    private static final long POLL_MS = 100L;
    /** Thin-client request threads (Ignite's default is max(8, cores)): a broker multiplexes
     *  many workers' requests over its connections, and one blocked request holds a thread. */
    private static final int CLIENT_THREADS = 32;
    /** See configure(): a transaction blocking a partition map exchange is rolled back. */
    private static final long TX_TIMEOUT_ON_EXCHANGE_MS = 5_000L;
    private static final String CALCITE_ENGINE = "org.apache.ignite.calcite.CalciteQueryEngineConfiguration";

    private IgniteDevNode() {
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parseArgs(argv);
        int idx = intArg(args, "idx");
        int nodes = intArg(args, "nodes");
        int clientPort = intArg(args, "client-port");
        boolean auth = args.containsKey("auth");

        IgniteConfiguration cfg = configure(args, idx, nodes, clientPort, auth);
        CountDownLatch stopped = new CountDownLatch(1);
        String name = cfg.getIgniteInstanceName();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            Ignition.stop(name, true);
            stopped.countDown();
        }, "dev-node-stop"));

        Ignite ignite;
        try {
            ignite = Ignition.start(cfg);
        } catch (Throwable e) {
            System.err.println("IGNITE_FAILED idx=" + idx + " error=" + e);
            e.printStackTrace();
            System.exit(3);
            return;
        }
        System.out.println("IGNITE_STARTED idx=" + idx + " port=" + clientPort);
        System.out.flush();
        int servers = awaitTopology(ignite, idx, nodes, auth);
        System.out.println("IGNITE_READY idx=" + idx + " port=" + clientPort + " servers=" + servers);
        System.out.flush();
        watchRebalance(ignite, idx);
        stopped.await();
    }

    private static IgniteConfiguration configure(
            Map<String, String> args, int idx, int nodes, int clientPort, boolean auth)
            throws ReflectiveOperationException {
        String name = "node-" + idx;
        IgniteConfiguration cfg = new IgniteConfiguration()
            .setIgniteInstanceName(name)
            .setConsistentId(name)
            .setLocalHost(HOST)
            .setWorkDirectory(new File(args.get("work-dir")).getAbsolutePath())
            .setMetricsLogFrequency(0)
            .setFailureDetectionTimeout(10_000)
            .setConnectorConfiguration(null)
            .setAuthenticationEnabled(auth)
            .setDiscoverySpi(discovery(intArg(args, "discovery-port"), idx, nodes))
            .setCommunicationSpi(communication(intArg(args, "comm-port")))
            .setClientConnectorConfiguration(clientConnector(args, clientPort))
            .setDataStorageConfiguration(storage(auth));
        // A partition map exchange (a node joins or leaves) waits for the transactions holding
        // its partitions; their next request may wait in the client-connector pool behind
        // requests that wait for the exchange (a soak under load wedged so at a node's
        // restart): after this long the exchange rolls them back instead of waiting forever.
        TransactionConfiguration tx = new TransactionConfiguration()
            .setTxTimeoutOnPartitionMapExchange(TX_TIMEOUT_ON_EXCHANGE_MS);
        cfg.setTransactionConfiguration(tx);
        // With auth the region is persistent, so the cluster starts INACTIVE (see awaitTopology).
        if (args.containsKey("tx-aware-queries")) {
            tx.setTxAwareQueriesEnabled(true);
            cfg.setSqlConfiguration(new SqlConfiguration().setQueryEnginesConfiguration(calciteEngine()));
        }
        return cfg;
    }

    /** The Calcite engine as the default SQL engine (the H2 one refuses queries in a transaction);
     *  loaded by name since the launcher is compiled without the ignite-calcite jars. */
    private static QueryEngineConfiguration calciteEngine() throws ReflectiveOperationException {
        Object engine = Class.forName(CALCITE_ENGINE).getDeclaredConstructor().newInstance();
        return ((QueryEngineConfiguration) engine).setDefault(true);
    }

    /** Pinned local port; the VM finder lists exactly this cluster's discovery ports. */
    private static TcpDiscoverySpi discovery(int port, int idx, int nodes) {
        int first = port - idx;
        List<String> addresses = new ArrayList<>();
        addresses.add(HOST + ":" + first + ".." + (first + nodes - 1));
        return new TcpDiscoverySpi()
            .setLocalAddress(HOST)
            .setLocalPort(port)
            .setLocalPortRange(0)
            .setIpFinder(new TcpDiscoveryVmIpFinder().setAddresses(addresses));
    }

    private static TcpCommunicationSpi communication(int port) {
        TcpCommunicationSpi spi = new TcpCommunicationSpi();
        spi.setLocalAddress(HOST);
        spi.setLocalPort(port);
        spi.setLocalPortRange(0);
        return spi;
    }

    private static ClientConnectorConfiguration clientConnector(Map<String, String> args, int port) {
        ClientConnectorConfiguration conn = new ClientConnectorConfiguration()
            .setHost(HOST)
            .setPort(port)
            .setPortRange(0)
            .setThreadPoolSize(CLIENT_THREADS)
            .setThinClientConfiguration(
                new ThinClientConfiguration().setMaxActiveComputeTasksPerConnection(8));
        if (args.containsKey("ssl-keystore")) {
            // TLS on the thin-client port only: discovery and communication stay plain.
            SslContextFactory ssl = new SslContextFactory();
            char[] password = args.get("ssl-password").toCharArray();
            ssl.setKeyStoreFilePath(new File(args.get("ssl-keystore")).getAbsolutePath());
            ssl.setKeyStoreType("PKCS12");
            ssl.setKeyStorePassword(password);
            ssl.setTrustStoreFilePath(new File(args.get("ssl-truststore")).getAbsolutePath());
            ssl.setTrustStoreType("PKCS12");
            ssl.setTrustStorePassword(password);
            conn.setSslEnabled(true)
                .setUseIgniteSslContextFactory(false)
                .setSslClientAuth(true)
                .setSslContextFactory(ssl);
        }
        return conn;
    }

    /** Small default region (grown on demand: every cache costs ~10 MB of pages for its
     *  1,024 partitions, and the test suite creates hundreds); with auth it must be
     *  persistent, so WAL sizes are capped too. */
    private static DataStorageConfiguration storage(boolean persistent) {
        DataRegionConfiguration region = new DataRegionConfiguration()
            .setName("default")
            .setInitialSize(64 * MB)
            .setMaxSize(persistent ? 256 * MB : 1024 * MB)
            .setPersistenceEnabled(persistent);
        DataStorageConfiguration storage = new DataStorageConfiguration()
            .setDefaultDataRegionConfiguration(region);
        if (persistent) {
            region.setCheckpointPageBufferSize(32 * MB);
            storage.setWalSegmentSize((int) (4 * MB))
                .setWalSegments(4)
                .setMaxWalArchiveSize(64 * MB);
        }
        return storage;
    }

    /** Prints the cluster's "Rebalanced" metric whenever it changes: a node that joined holds no
     *  copy of its partitions until rebalancing ends, so with one backup a harness that kills
     *  another node before then loses data (broker/devcluster/cluster.py await_rebalanced). */
    private static void watchRebalance(Ignite ignite, int idx) {
        Thread watcher = new Thread(() -> {
            Metric metric = ((IgniteEx) ignite).context().metric().registry("cluster").findMetric("Rebalanced");
            Boolean last = null;
            try {
                while (true) {
                    boolean now = metric instanceof BooleanMetric && ((BooleanMetric) metric).value();
                    if (last == null || now != last) {
                        System.out.println((now ? "IGNITE_REBALANCED" : "IGNITE_REBALANCING") + " idx=" + idx + " ");
                        System.out.flush();
                        last = now;
                    }
                    Thread.sleep(POLL_MS * 5);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "dev-node-rebalance");
        watcher.setDaemon(true);
        watcher.start();
    }

    /** Waits for --nodes servers (and activation with auth); returns the server count seen. */
    private static int awaitTopology(Ignite ignite, int idx, int nodes, boolean auth)
            throws InterruptedException {
        boolean activationRequested = false;
        while (true) {
            int servers = ignite.cluster().forServers().nodes().size();
            if (servers >= nodes) {
                if (!auth) {
                    return servers;
                }
                ClusterState state = ignite.cluster().state();
                if (state == ClusterState.ACTIVE) {
                    return servers;
                }
                if (idx == 0 && !activationRequested) {
                    ignite.cluster().state(ClusterState.ACTIVE);
                    activationRequested = true;
                    continue;
                }
            }
            Thread.sleep(POLL_MS);
        }
    }

    /** Parses `--key value` pairs and bare `--flag`s. */
    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + argv[i]);
            }
            String key = argv[i].substring(2);
            boolean hasValue = i + 1 < argv.length && !argv[i + 1].startsWith("--");
            args.put(key, hasValue ? argv[++i] : "true");
        }
        for (String required : new String[] {"idx", "nodes", "client-port", "discovery-port",
                "comm-port", "work-dir"}) {
            if (!args.containsKey(required)) {
                throw new IllegalArgumentException("missing --" + required);
            }
        }
        return args;
    }

    private static int intArg(Map<String, String> args, String key) {
        return Integer.parseInt(args.get(key));
    }

    /** Passes the events whose key, as a string, starts with {@code prefix} (set by name). */
    public static final class KeyPrefixFilter implements CacheEntryEventSerializableFilter<Object, Object> {
        private static final long serialVersionUID = 1L;

        private String prefix = "";

        public KeyPrefixFilter() {
        }

        @Override
        public boolean evaluate(CacheEntryEvent<?, ?> event) {
            return String.valueOf(event.getKey()).startsWith(prefix);
        }
    }
}
