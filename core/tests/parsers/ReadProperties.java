// Load a .properties file with java.util.Properties, both as ISO-8859-1
// (load(InputStream)) and as UTF-8 (load(Reader)), and print both as JSON.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class ReadProperties {
    static String json(Properties p) {
        StringBuilder b = new StringBuilder("{");
        TreeSet<String> keys = new TreeSet<>(p.stringPropertyNames());
        boolean first = true;
        for (String k : keys) {
            if (!first) b.append(',');
            first = false;
            b.append(str(k)).append(':').append(str(p.getProperty(k)));
        }
        return b.append('}').toString();
    }

    static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        Properties latin1 = new Properties();
        try (InputStream in = new FileInputStream(args[0])) { latin1.load(in); }
        Properties utf8 = new Properties();
        try (Reader r = new InputStreamReader(new FileInputStream(args[0]), StandardCharsets.UTF_8)) { utf8.load(r); }
        System.out.println("[" + json(latin1) + "," + json(utf8) + "]");
    }
}
