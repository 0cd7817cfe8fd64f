using System.Runtime.InteropServices;
using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.IO;

namespace Sd.Cli;

public static class Program
{
    private const string Usage = """
        sd - Stable Diffusion on the CPU, no ML runtime underneath.

        Usage: sd COMMAND [options]      (sd COMMAND --help for its options)

        Commands:
          info MODEL                 components, dtypes, parameter counts, configs, estimated memory
          tokenize                   CLIP token ids of a prompt
          encode-text                CLIP text encoder hidden states
          unet                       one UNet forward pass on .npy inputs
          vae-decode                 latents -> image (.npy, optionally PNG)
          vae-encode                 image (.npy/.png) -> latent posterior
          generate                   txt2img / img2img / inpainting to PNG (no --model: a built-in demo, noise)
          upscale                    a PNG upscaled as A1111's Extras tab does (Lanczos, Nearest, ESRGAN models)
          preprocess                 a ControlNet's control picture from a photograph (canny edges, invert)
          bench                      timings, GFLOP/s and peak memory per model part
          make-random-model          SD 1.5-shaped model folder with seeded random weights

        MODEL is a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/) or a single-file
        .safetensors checkpoint. Pickled .ckpt/.pt/.bin files are refused: they can run code when loaded. A single
        file stores no head counts (nor CLIP's activation, scheduler, ...): they are guessed from the SD family its
        shapes resemble (`sd info` lists the guesses), and --config DIR, a diffusers folder with the model's configs
        (unet/config.json, ... and tokenizer/, whichever it has), replaces them.
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            Console.Out.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        string command = args[0];
        string[] rest = args[1..];
        // Ctrl-C or a kill ends the process without running finally blocks: the files and folders being written
        // (temporaries, renamed into place only when whole) are deleted first, then the signal takes its course.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, DeleteTemporaries);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, DeleteTemporaries);
        try
        {
            CheckThreadSetting(Environment.GetEnvironmentVariable("SD_THREADS"));
            return command switch
            {
                "info" => InfoCommand.Run(rest, Console.Out),
                "tokenize" => TextCommands.Tokenize(rest, Console.Out),
                "encode-text" => TextCommands.EncodeText(rest, Console.Out),
                "unet" => ModelCommands.UNet(rest, Console.Out),
                "vae-decode" => ModelCommands.VaeDecode(rest, Console.Out),
                "vae-encode" => ModelCommands.VaeEncode(rest, Console.Out),
                "make-random-model" => MakeRandomModelCommand.Run(rest, Console.Out),
                "bench" => BenchCommand.Run(rest, Console.Out),
                "generate" => GenerateCommand.Run(rest, Console.Out),
                "upscale" => UpscaleCommand.Run(rest, Console.Out),
                "preprocess" => PreprocessCommand.Run(rest, Console.Out),
                _ => throw new UsageException($"unknown command '{command}' (see `sd --help`)"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"sd: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException
            or NotSupportedException or ArithmeticException or OperationCanceledException or OutOfMemoryException)
        {
            // InvalidFileException (an IOException) already names the file and the problem.
            Console.Error.WriteLine($"sd {command}: {Describe(e)}");
            return 1;
        }
    }

    /// <summary>
    /// An exception's message for the terminal: an ArgumentException's " (Parameter 'name')" suffix names a C#
    /// parameter the user never saw, so it goes, and an out-of-range value is told as ", got VALUE".
    /// </summary>
    public static string Describe(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name } && message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var at and >= 0)
        {
            message = message[..at];
            if (e is ArgumentOutOfRangeException { ActualValue: { } value })
            {
                message += $", got {value}";
            }
        }
        return message;
    }

    private static void DeleteTemporaries(PosixSignalContext context) => AtomicFile.DeleteTemporaries();

    /// <summary>
    /// SD_THREADS is read when the worker pool first starts, which may be after a model has loaded: checked at once
    /// instead, even when --threads overrides it, so a typo in the environment is reported before any work.
    /// </summary>
    public static void CheckThreadSetting(string? value)
    {
        try
        {
            Sd.Kernels.Threading.WorkerPool.ThreadCountSetting(value);
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new UsageException($"SD_THREADS='{value}' must be a whole number of threads from 1 to {Sd.Kernels.Threading.WorkerPool.MaxThreads}");
        }
    }
}
