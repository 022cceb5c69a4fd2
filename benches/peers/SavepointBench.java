// Flink 2.3 peer of benches/src/savepoint.rs: the keyed count (ValueState<Long> per key,
// key = seq % KEYS, EmbeddedRocksDB with incremental checkpoints, parallelism 2) in a
// local MiniCluster, filled until every key exists (2 * KEYS records), then a native and
// a canonical savepoint (JobClient.triggerSavepoint, timed to the future's completion),
// then restores of each into a job whose source ends at once (its source has another
// uid, so the savepoint's source state is left unclaimed), timed against the same job
// without a savepoint (the faster of two empty runs): the whole run, and the time until
// the last subtask's Count.open() (Flink restores keyed state before open), each minus
// the empty run's. Every restore starts from a cold page cache.
//
//   java -Xmx8g -cp ... SavepointBench KEYS WORKDIR RUNS
//
// Prints key=value lines in the format of savepoint-bench. MB = 10^6 bytes.
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

public class SavepointBench {
  static final AtomicLong PROCESSED = new AtomicLong();
  /** System.nanoTime() of the last Count.open(): state is restored before open. */
  static final AtomicLong OPENED = new AtomicLong();

  public static class Count extends KeyedProcessFunction<Long, Long, Long> {
    transient ValueState<Long> st;
    transient long local;
    @Override public void open(OpenContext ctx) {
      st = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
      OPENED.accumulateAndGet(System.nanoTime(), Math::max);
    }
    @Override public void processElement(Long v, Context ctx, Collector<Long> out) throws Exception {
      Long c = st.value(); long n = (c == null ? 0 : c) + 1; st.update(n);
      if ((v & 0xFFFFF) == 0) out.collect(n);
      if (++local == 4096) { PROCESSED.addAndGet(local); local = 0; }
    }
  }

  static long keys;
  static String work;

  static long du(Path p) throws Exception {
    if (!Files.exists(p)) return 0;
    try (Stream<Path> s = Files.walk(p)) {
      return s.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
    }
  }

  static void rm(Path p) throws Exception {
    if (!Files.exists(p)) return;
    try (Stream<Path> s = Files.walk(p)) {
      s.sorted(java.util.Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
    }
  }

  static String load() throws Exception {
    String[] f = new String(Files.readAllBytes(Paths.get("/proc/loadavg"))).trim().split("\\s+");
    return f[0] + "/" + f[1] + "/" + f[2];
  }

  static void dropCaches() throws Exception {
    new ProcessBuilder("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches").inheritIO().start().waitFor();
  }

  static Configuration conf(String backend, String rocksDir) {
    Configuration conf = new Configuration();
    conf.setString("state.backend.type", backend);
    conf.setString("execution.checkpointing.incremental", "true");
    conf.setString("execution.checkpointing.dir", "file://" + work + "/ck");
    conf.setString("state.backend.rocksdb.localdir", rocksDir);
    // The MiniCluster's default managed memory (RocksDB's block cache and write buffers)
    // is small: at 10M keys each get re-read and decompressed an SST's index block
    // (perf: snappy in BlockBasedTable::ReadIndexBlock) and the fill crawled.
    String managed = System.getProperty("sluice.managed");
    if (managed != null) conf.setString("taskmanager.memory.managed.size", managed);
    return conf;
  }

  static void build(StreamExecutionEnvironment env, boolean empty) {
    final long k = keys;
    (empty ? env.fromSequence(0, 0).uid("src-empty") : env.fromSequence(0, Long.MAX_VALUE - 1).uid("src"))
        .keyBy(x -> x % k, Types.LONG).process(new Count()).uid("count")
        .sinkTo(new DiscardingSink<>()).uid("sink");
  }

  /** Runs the empty job, restoring `from` (or nothing): {wall seconds, seconds until the
   *  last subtask's Count.open(), which follows its state's restore}. */
  static double[] restore(String from, String backend, int par) throws Exception {
    String rocks = work + "/rocks-restore";
    rm(Paths.get(rocks));
    Configuration conf = conf(backend, rocks);
    if (from != null) {
      conf.setString("execution.state-recovery.path", from);
      conf.setString("execution.state-recovery.ignore-unclaimed-state", "true");
    }
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.setParallelism(par);
    build(env, true);
    dropCaches();
    OPENED.set(0);
    long t0 = System.nanoTime();
    env.execute("savepoint-bench");
    double s = (System.nanoTime() - t0) / 1e9;
    double open = (OPENED.get() - t0) / 1e9;
    rm(Paths.get(rocks));
    return new double[] {s, open};
  }

  public static void main(String[] a) throws Exception {
    keys = Long.parseLong(a[0]);
    work = a[1];
    int runs = a.length > 2 ? Integer.parseInt(a[2]) : 1;
    for (int run = 1; run <= runs; run++) {
      String rocks = work + "/rocks";
      rm(Paths.get(rocks));
      StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf("rocksdb", rocks));
      env.setParallelism(2);
      build(env, false);
      PROCESSED.set(0);
      long t0 = System.nanoTime();
      JobClient job = env.executeAsync("savepoint-bench");
      while (PROCESSED.get() < 2 * keys) Thread.sleep(20);
      double fill = (System.nanoTime() - t0) / 1e9;
      System.out.printf("fill keys=%d backend=rocksdb par=2 run=%d records=%d seconds=%.2f rec_per_s=%.0f load=%s%n",
          keys, run, PROCESSED.get(), fill, PROCESSED.get() / fill, load());
      String[] dirs = new String[2];
      SavepointFormatType[] forms = {SavepointFormatType.NATIVE, SavepointFormatType.CANONICAL};
      for (int i = 0; i < 2; i++) {
        String dir = work + "/sp-" + forms[i].name().toLowerCase();
        rm(Paths.get(dir));
        String ld = load();
        long t = System.nanoTime();
        String loc = job.triggerSavepoint("file://" + dir, forms[i]).get();
        double s = (System.nanoTime() - t) / 1e9;
        long live = du(Paths.get(rocks));
        long bytes = du(Paths.get(dir));
        dirs[i] = loc;
        System.out.printf("savepoint keys=%d backend=rocksdb form=%s run=%d seconds=%.3f bytes=%d mb=%.1f mb_per_s=%.1f live_rocks_bytes=%d load=%s%n",
            keys, forms[i].name().toLowerCase(), run, s, bytes, bytes / 1e6, bytes / 1e6 / s, live, ld);
      }
      job.cancel().get();
      Thread.sleep(1000);
      // Each empty run twice (the first pays for class loading and JIT), the faster kept.
      double[][] empty = new double[2][];
      String[] backends = {"rocksdb", "hashmap"};
      for (int b = 0; b < 2; b++) {
        double[] x = restore(null, backends[b], 2), y = restore(null, backends[b], 2);
        empty[b] = new double[] {Math.min(x[0], y[0]), Math.min(x[1], y[1])};
        System.out.printf("empty keys=%d backend=%s par=2 run=%d seconds=%.3f open_s=%.3f%n", keys, backends[b], run, empty[b][0], empty[b][1]);
      }
      Object[][] cases = {
        {0, "rocksdb", 2, "reopen"}, {0, "rocksdb", 3, "rescale"},
        {1, "rocksdb", 2, "rebuild"}, {1, "hashmap", 2, "rebuild"},
      };
      for (Object[] c : cases) {
        int i = (Integer) c[0]; String backend = (String) c[1]; int par = (Integer) c[2];
        String dir = dirs[i].replaceFirst("^file:", "");
        long bytes = du(Paths.get(dir));
        String ld = load();
        double[] r = restore(dirs[i], backend, par);
        double[] e = empty[backend.equals("rocksdb") ? 0 : 1];
        double net = Math.max(r[0] - e[0], 1e-3), netOpen = Math.max(r[1] - e[1], 1e-3);
        System.out.printf("restore keys=%d form=%s onto=%s par=%d path=%s run=%d seconds=%.3f open_s=%.3f restore_s=%.3f restore_open_s=%.3f bytes=%d mb_per_s=%.1f mb_per_s_open=%.1f load=%s%n",
            keys, forms[i].name().toLowerCase(), backend, par, c[3], run, r[0], r[1], net, netOpen, bytes, bytes / 1e6 / net, bytes / 1e6 / netOpen, ld);
      }
      for (String d : dirs) rm(Paths.get(d.replaceFirst("^file:", "")));
      rm(Paths.get(rocks));
    }
    System.exit(0);
  }
}
