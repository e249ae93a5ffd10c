import java.io.IOException;
import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.common.settings.Settings;

/**
 * One OpenSearch node of a container cluster, on the codelibs runner.
 *
 * <p>Arguments: the runner's base folder, the plugin classes (comma-separated), then
 * settings as name=value (a later one wins). The settings are put on top of everything
 * the runner would choose for a node it runs in its own JVM (single-node discovery, the
 * name "Node 1", the first free port), so nodes in separate containers find each other
 * through discovery.seed_hosts as the official image's nodes do.
 */
public final class OpenSearchContainerNode {
    private OpenSearchContainerNode() {}

    public static void main(final String[] args) throws Exception {
        final Settings.Builder given = Settings.builder();
        for (int i = 2; i < args.length; i++) {
            final int equals = args[i].indexOf('=');
            given.put(args[i].substring(0, equals), args[i].substring(equals + 1));
        }
        // The runner makes a lone node single-node; a node of a cluster must discover.
        if (given.get("discovery.type") == null) {
            given.put("discovery.type", "zen");
        }
        final Settings settings = given.build();
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((number, builder) -> builder.put(settings));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final IOException e) {
                System.err.println("closing the node: " + e);
            }
        }));
        runner.build("-basePath", args[0], "-numOfNode", "1", "-pluginTypes", args[1]);
        while (!runner.isClosed()) {
            Thread.sleep(1000);
        }
    }
}
