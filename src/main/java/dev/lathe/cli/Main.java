package dev.lathe.cli;

import dev.lathe.LatheException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** Entry point of the {@code lathe} command line. */
@Command(name = "lathe", mixinStandardHelpOptions = true, version = "lathe 0.1.0",
        description = "Make LLaMA-family language models small and fast: load, compress, evaluate, save.",
        subcommands = {InspectCommand.class, GenerateCommand.class, EvalCommand.class, ConvertCommand.class,
                BenchCommand.class, SynthCommand.class, TrainTokenizerCommand.class, TrainCommand.class,
                QuantizeCommand.class, ImatrixCommand.class, SensitivityCommand.class, PruneCommand.class, FinetuneCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the CLI and returns the exit code: 0 ok, 2 bad input or usage, 1 internal error. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            Throwable t = ex;
            while (t != null && !(t instanceof LatheException) && !(t instanceof OutOfMemoryError)) t = t.getCause();
            if (t instanceof LatheException le) {
                err.println("lathe: " + oneLine(le.getMessage()));
                return 2;
            }
            if (t instanceof OutOfMemoryError) {
                err.println("lathe: out of memory (" + oneLine(t.getMessage()) + "); raise -Xmx via LATHE_JAVA_OPTS");
                return 2;
            }
            err.println("lathe: internal error: " + ex);
            ex.printStackTrace(err);
            return 1;
        });
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("lathe: " + oneLine(ex.getMessage()));
            CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
            err.println("Try 'lathe " + (ex.getCommandLine().getCommandName().equals("lathe") ? "" : ex.getCommandLine().getCommandName() + " ") + "--help'.");
            return 2;
        });
        try {
            return cl.execute(args);
        } catch (OutOfMemoryError e) {
            // picocli's handler sees exceptions only; an Error thrown by a command ends up here
            err.println("lathe: out of memory (" + oneLine(e.getMessage()) + "); raise -Xmx via LATHE_JAVA_OPTS");
            return 2;
        }
    }

    static String oneLine(String s) {
        return s == null ? "" : s.replace('\n', ' ').replace('\r', ' ');
    }
}
