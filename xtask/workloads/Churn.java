// The Java workload: two threads of varied work (maps, sorting, strings,
// regular expressions, big integers) for the seconds given, so that most
// of the time goes to JIT-compiled code. Its JIT frames are named through
// the perf map, which it dumps itself every DUMP_MS milliseconds
// (jcmd's Compiler.perfmap, called in-process: a profiler that names
// addresses as it drains them needs the map before the JVM exits), and
// the JVM dumps once more at exit (-XX:+DumpPerfMapAtExit).
import java.lang.management.ManagementFactory;
import java.math.BigInteger;
import java.util.*;
import java.util.regex.*;
import javax.management.ObjectName;

public class Churn {
    record Item(String name, int weight, double score) {}

    static long words(Random r) {
        Map<String, Integer> counts = new HashMap<>();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 20_000; i++) {
            sb.setLength(0);
            for (int j = 0; j < 1 + r.nextInt(6); j++) sb.append((char) ('a' + r.nextInt(8)));
            counts.merge(sb.toString(), 1, Integer::sum);
        }
        return counts.values().stream().mapToLong(Integer::longValue).max().orElse(0);
    }

    static long sorting(Random r) {
        List<Item> items = new ArrayList<>();
        for (int i = 0; i < 20_000; i++)
            items.add(new Item("item" + r.nextInt(1000), r.nextInt(100), r.nextDouble()));
        items.sort(Comparator.comparingInt(Item::weight).thenComparing(Item::name).thenComparingDouble(Item::score));
        return items.get(items.size() / 2).weight();
    }

    static final Pattern PATTERN = Pattern.compile("([a-z]+)-(\\d+)");

    static long regex(Random r) {
        long sum = 0;
        for (int i = 0; i < 5_000; i++) {
            Matcher m = PATTERN.matcher("key" + (char) ('a' + r.nextInt(26)) + "-" + r.nextInt(100000));
            if (m.matches()) sum += Long.parseLong(m.group(2)) + m.group(1).length();
        }
        return sum;
    }

    static long bigMath(Random r) {
        BigInteger f = BigInteger.ONE;
        for (int i = 2; i < 600 + r.nextInt(50); i++) f = f.multiply(BigInteger.valueOf(i));
        return f.bitLength();
    }

    static void work(long until, long[] sink, int slot) {
        Random r = new Random(slot);
        while (System.nanoTime() < until)
            sink[slot] += words(r) + sorting(r) + regex(r) + bigMath(r);
    }

    public static void main(String[] args) throws Exception {
        long seconds = Long.parseLong(args[0]);
        long dumpMs = args.length > 1 ? Long.parseLong(args[1]) : 0;
        long until = System.nanoTime() + seconds * 1_000_000_000L;
        long[] sink = new long[2];
        Thread[] threads = new Thread[2];
        for (int t = 0; t < threads.length; t++) {
            int slot = t;
            threads[t] = new Thread(() -> work(until, sink, slot));
            threads[t].start();
        }
        if (dumpMs > 0) {
            var server = ManagementFactory.getPlatformMBeanServer();
            var dcmd = new ObjectName("com.sun.management:type=DiagnosticCommand");
            while (threads[0].isAlive()) {
                server.invoke(dcmd, "compilerPerfmap", new Object[] {null}, new String[] {String[].class.getName()});
                threads[0].join(dumpMs);
            }
        }
        for (Thread t : threads) t.join();
        System.out.println(sink[0] + sink[1]);
    }
}
