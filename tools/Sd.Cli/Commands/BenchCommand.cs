using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sd.Engine.Adapters;
using Sd.Engine.Pipelines;
using Sd.Engine.Vision;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.Upscaling;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Kernels.Diagnostics;
using Sd.Kernels.Threading;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd bench</c>: load a model part, warm up, time N runs on random inputs; report median/min/max seconds,
/// effective GFLOP/s (FLOPs counted by the kernels), % of the measured FMA peak and peak RSS.
/// </summary>
public static class BenchCommand
{
    private const string Help = """
        Usage: sd bench --model M --part text|unet|controlnet|adapter|image-encoder|vae-decode|vae-encode|txt2img|upscale [--height H] [--width W]
                        [--batch B] [--steps S] [--reps N] [--threads T] [--winograd-budget MIB] [--distinct-latents]
                        [--ip-adapter FILE] [--profile] [--json]

        Times one model part at real size on random inputs (e.g. a folder from `sd make-random-model`): one warm-up
        run, then N timed runs (default 3). Height and width are image pixels (default 512); UNet latents are 1/8.
        txt2img runs the whole pipeline (S steps, default 20, DPM++ 2M, guidance 7.5), loading the components one at
        a time in every run as `sd generate` does, so its times include the loads; it needs a tokenizer (the model's,
        or --tokenizer DIR). upscale runs one pass of an ESRGAN-family model (--model FILE.safetensors) over a random
        H x W picture in A1111's tiles (192 pixels overlapping by 8), as `sd upscale` runs it. controlnet runs one
        ControlNet pass (--model: a ControlNet folder or file, e.g. from `sd make-random-model --like sd15-controlnet`)
        on one H x W picture, whose embedding is kept between runs as between steps. adapter runs a T2I-Adapter
        (--model: an adapter folder or file, e.g. from `sd make-random-model --like sd15-adapter`) on one H x W
        picture: what a generation pays once per pass. image-encoder runs an IP-Adapter's CLIP image encoder (--model:
        its folder, e.g. image_encoder/ from `sd make-random-model --like sd15-ip-adapter`) on B random pictures of its
        own size (224 for ViT-H/14; --height/--width do not apply): what a generation pays once; with --ip-adapter
        FILE, the encoder output that adapter takes (Plus and full-face: the states before the last layer) and its
        image projection (for those, the first generation with an encoder also encodes zero pixels once, kept for
        the unconditioned rows of every later one). Threads: --threads or
        SD_THREADS (default: all cores). Prints median/min/max seconds,
        effective GFLOP/s (convolutions counted as direct convolution), % of the FMA peak measured on the same
        threads, load time and peak RSS. --profile adds the share of one run's time per kernel kind, the share in
        parallel calls and how much of the threads' time there they waited for each other, and the kernel shapes that
        took the most of it (all of them with --json), each with its calls and GFLOP/s.
        --winograd-budget sets the UNet's memory for stored Winograd weights (default 256 MiB, SD 1.5's finest level;
        0 keeps 16-bit weights 16-bit everywhere). 3x3 layers without them transform their weights per call.
        An even UNet batch is a classifier-free guidance call: its second half repeats the first half's latents (the
        contexts differ), and the UNet computes the layers before the first cross-attention once for both halves;
        --distinct-latents gives every image its own latents instead. --ip-adapter FILE (unet) adds an IP-Adapter's
        image attention to every cross-attention layer, on random image tokens: what it costs per step.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        var line = new CommandLine("bench", args, ModelOptions.With("--part", "--height", "--width", "--batch", "--reps", "--steps", "--winograd-budget", "--ip-adapter"),
            ["--json", "--profile", "--distinct-latents"]);
        string part = line.Require("--part");
        int height = Positive(line, "--height", 512), width = Positive(line, "--width", 512), batch = Positive(line, "--batch", 1);
        int reps = Positive(line, "--reps", 3), steps = Positive(line, "--steps", 20);
        if (reps > MaxReps)
        {
            throw new UsageException($"bench: --reps must be at most {MaxReps}, got {reps}");
        }
        if (height % 8 != 0 || width % 8 != 0 || height > StableDiffusionPipeline.MaxImageSide || width > StableDiffusionPipeline.MaxImageSide)
        {
            throw new UsageException($"bench: --height and --width must be positive multiples of 8, at most {StableDiffusionPipeline.MaxImageSide}, got {height}x{width}");
        }
        if (batch > StableDiffusionPipeline.MaxBatchCount)
        {
            throw new UsageException($"bench: --batch must be in [1, {StableDiffusionPipeline.MaxBatchCount}], got {batch}");
        }
        if (line.Has("--ip-adapter") && part is not ("unet" or "image-encoder"))
        {
            throw new UsageException($"bench: --ip-adapter times a UNet call with one (--part unet) or what it pays per generation (--part image-encoder), not --part {part}");
        }
        UNetOptions unetOptions = UNetOptions(line);
        var load = Stopwatch.StartNew();
        // Each runner owns what it opens: a component part its ModelSource, txt2img a whole pipeline.
        using Runner runner = part switch
        {
            "text" => WithModel(line, model => TextRunner(model, batch)),
            "unet" => WithModel(line, model => UNetRunner(model, unetOptions, batch, height / 8, width / 8, line.Has("--distinct-latents"), line.Get("--ip-adapter"))),
            "controlnet" => ControlNetRunner(line, unetOptions, batch, height, width),
            "adapter" => AdapterRunner(line, batch, height, width),
            "image-encoder" => ImageEncoderRunner(line, batch, line.Get("--ip-adapter")),
            "vae-decode" => WithModel(line, model => VaeRunner(model, batch, height, width, decode: true)),
            "vae-encode" => WithModel(line, model => VaeRunner(model, batch, height, width, decode: false)),
            "txt2img" => Txt2ImgRunner(line, unetOptions, height, width, steps),
            "upscale" => UpscaleRunner(line, batch, height, width),
            _ => throw new UsageException($"bench: --part '{part}' is not one of text, unet, controlnet, adapter, image-encoder, vae-decode, vae-encode, txt2img, upscale"),
        };
        double loadSeconds = load.Elapsed.TotalSeconds;
        if (runner.FixedSide is { } side)
        {
            (height, width) = (side, side);
        }

        runner.Action(); // warm-up: JIT, run buffers, page-in of the weights
        FlopCounter.Reset();
        FlopCounter.Enabled = true;
        KernelProfiler.Reset();
        KernelProfiler.Enabled = line.Has("--profile");
        WorkerPool.Shared.ResetUtilization();
        WorkerPool.Shared.MeasureUtilization = line.Has("--profile");
        var profiled = Stopwatch.StartNew();
        runner.Action();
        double profiledSeconds = profiled.Elapsed.TotalSeconds;
        KernelProfiler.Enabled = false;
        WorkerPool.Shared.MeasureUtilization = false;
        FlopCounter.Enabled = false;
        long flops = FlopCounter.Total;
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var clock = Stopwatch.StartNew();
            runner.Action();
            times[i] = clock.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        double median = times[reps / 2];
        int threads = WorkerPool.Shared.ThreadCount;
        double peak = FmaPeak.Measure(threads);
        double gflops = flops / median / 1e9;
        long rss = PeakRssBytes();
        var result = new Dictionary<string, object>
        {
            ["part"] = part, ["height"] = height, ["width"] = width, ["batch"] = batch, ["threads"] = threads,
            ["reps"] = reps, ["median_s"] = median, ["min_s"] = times[0], ["max_s"] = times[^1],
            ["gflop"] = flops / 1e9, ["gflops"] = gflops, ["fma_peak_gflops"] = peak, ["percent_of_peak"] = 100 * gflops / peak,
            ["load_s"] = loadSeconds, ["peak_rss_mib"] = rss / (1024.0 * 1024.0),
        };
        if (line.Has("--profile"))
        {
            result["profile"] = Profile(profiledSeconds);
            result["profile_shapes"] = ProfileShapes();
            (TimeSpan inCalls, TimeSpan inTasks) = WorkerPool.Shared.Utilization;
            result["parallel_share"] = inCalls.TotalSeconds / threads / profiledSeconds;
            result["pool_idle_share"] = inCalls > TimeSpan.Zero ? 1 - inTasks / inCalls : 0.0;
        }
        if (line.Has("--json"))
        {
            output.WriteLine(JsonSerializer.Serialize(result));
        }
        else
        {
            string F(double v, string f) => v.ToString(f, CultureInfo.InvariantCulture);
            string size = part == "text" ? "77 tokens" : $"{height}x{width}";
            output.WriteLine($"{part} {size} batch {batch}, {threads} threads, {reps} runs: median {F(median, "0.000")} s " +
                $"(min {F(times[0], "0.000")}, max {F(times[^1], "0.000")})");
            output.WriteLine($"  {F(flops / 1e9, "0.0")} GFLOP per run -> {F(gflops, "0.0")} GFLOP/s = {F(100 * gflops / peak, "0")}% of the " +
                $"{F(peak, "0")} GFLOP/s FMA peak; load {F(loadSeconds, "0.0")} s; peak RSS {F(rss / 1048576.0, "0")} MiB");
            if (runner.Detail?.Invoke() is { } detail)
            {
                output.WriteLine($"  last run: {detail}");
            }
            if (result.TryGetValue("profile", out object? shares))
            {
                output.WriteLine($"  profile of one run ({F(profiledSeconds, "0.000")} s):");
                foreach ((string kind, double share) in (Dictionary<string, double>)shares)
                {
                    output.WriteLine($"    {kind,-12} {F(100 * share, "0.0"),5}%  {F(share * profiledSeconds, "0.000")} s");
                }
                output.WriteLine($"  parallel calls took {F(100 * (double)result["parallel_share"], "0.0")}% of it; the {threads} threads waited " +
                    $"inside them {F(100 * (double)result["pool_idle_share"], "0.0")}% of their time there");
                var shapes = (List<Dictionary<string, object>>)result["profile_shapes"];
                output.WriteLine($"  its longest kernel shapes ({Math.Min(TopShapes, shapes.Count)} of {shapes.Count}):");
                foreach (Dictionary<string, object> shape in shapes.Take(TopShapes))
                {
                    double seconds = (double)shape["seconds"];
                    output.WriteLine($"    {F(100 * seconds / profiledSeconds, "0.0"),5}%  {F(seconds, "0.000")} s  {shape["calls"],3} calls " +
                        $"{F((double)shape["gflop"] / seconds, "0"),5} GFLOP/s  {shape["shape"]}");
                }
            }
        }
        return 0;
    }

    /// <summary>Share of one run's wall time per kernel kind; "other" is the time outside every kernel.</summary>
    private static Dictionary<string, double> Profile(double seconds)
    {
        var shares = new Dictionary<string, double>();
        double kernels = 0;
        foreach (KernelKind kind in Enum.GetValues<KernelKind>())
        {
            double s = KernelProfiler.Total(kind).TotalSeconds;
            kernels += s;
            shares[kind switch
            {
                KernelKind.Conv3x3 => "conv3x3",
                KernelKind.ConvOther => "conv other",
                _ => kind.ToString().ToLowerInvariant(),
            }] = s / seconds;
        }
        shares["other"] = Math.Max(0, seconds - kernels) / seconds;
        return shares;
    }

    /// <summary>Kernel shapes listed in the text report (--json lists all).</summary>
    private const int TopShapes = 12;

    /// <summary>The profiled run's kernel shapes, longest first: shape, kind, seconds, calls and GFLOP (counted as in the totals).</summary>
    private static List<Dictionary<string, object>> ProfileShapes()
    {
        var shapes = new List<Dictionary<string, object>>();
        foreach (KernelShapeTotals totals in KernelProfiler.ShapesByTime())
        {
            shapes.Add(new Dictionary<string, object>
            {
                ["shape"] = totals.Shape.ToString(), ["kind"] = totals.Kind.ToString(), ["seconds"] = totals.Time.TotalSeconds,
                ["calls"] = totals.Calls, ["gflop"] = totals.Flops / 1e9,
            });
        }
        return shapes;
    }

    private sealed class Runner(Action action, params IDisposable[] owned) : IDisposable
    {
        public Action Action { get; } = action;

        /// <summary>A breakdown of the last run, for parts that have one.</summary>
        public Func<string>? Detail { get; init; }

        /// <summary>The picture side a part runs at whatever --height/--width say (an image encoder's), reported instead.</summary>
        public int? FixedSide { get; init; }

        public void Dispose()
        {
            foreach (IDisposable d in owned) d.Dispose();
        }
    }

    /// <summary>Opens --model for a component runner, which then owns it (closed here if building the runner fails).</summary>
    private static Runner WithModel(CommandLine line, Func<ModelSource, Runner> build)
    {
        ModelSource model = ModelOptions.Open(line);
        try
        {
            return build(model);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static Runner TextRunner(ModelSource model, int batch)
    {
        var encoder = new ClipTextModel(model.TextEncoder ?? throw new InvalidFileException(model.Path, "the model has no text encoder"),
            model.Weights(ModelComponent.TextEncoder));
        var ids = new long[batch * encoder.Config.MaxPositionEmbeddings];
        var random = new Random(1);
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(encoder.Config.VocabSize);
        return new Runner(() => encoder.Encode(ids, batch).Dispose(), encoder, model);
    }

    private static UNetOptions UNetOptions(CommandLine line) =>
        line.Get("--winograd-budget") is null ? new UNetOptions()
        : line.GetInt("--winograd-budget", 0) is int mib and >= 0 ? new UNetOptions { WinogradBudgetBytes = (long)mib << 20 }
        : throw new UsageException($"bench: --winograd-budget must be a size in MiB, 0 or more, got {line.Get("--winograd-budget")}");

    /// <summary>One UNet call; with <paramref name="ipAdapter"/> (an IP-Adapter file), its image tokens (random) attended to as in a generation.</summary>
    private static Runner UNetRunner(ModelSource model, UNetOptions options, int batch, int h, int w, bool distinctLatents, string? ipAdapter)
    {
        var unet = new UNet2DConditionModel(model.UNet ?? throw new InvalidFileException(model.Path, "the model has no UNet"), model.Weights(ModelComponent.Unet), options);
        Tensor sample = Latents([batch, h, w, unet.Config.InChannels], distinctLatents);
        Tensor context = RandomTensor([batch, 77, unet.Config.CrossAttentionDim[0]]);
        Tensor output = Tensor.Allocate([batch, h, w, unet.Config.OutChannels]);
        float[] timestep = [999f];
        // An LCM-distilled UNet is timed with its guidance condition (its batch is then not a CFG pair, just images).
        float[] condition = unet.Config.TimeCondProjDim is { } condDim ? GuidanceScaleEmbedding.Compute(7.5f, condDim) : [];
        if (ipAdapter is null)
        {
            return new Runner(() => unet.Forward(sample, timestep, context, output, condition), unet, sample, context, output, model);
        }
        var source = IpAdapterSource.Open(ipAdapter);
        IpAdapterModel? adapter = null;
        try
        {
            adapter = new IpAdapterModel(source);
            // A random encoder output for the adapter's projection; hidden states at ViT-H/14's 257 positions (full-face: 257 tokens).
            using Tensor input = RandomTensor(adapter.TakesHiddenStates ? [batch, Sd15.ImageEncoder.Positions, adapter.InputWidth] : [batch, adapter.InputWidth]);
            using Tensor tokens = adapter.Project(input);
            ImagePrompt[] prompts = [adapter.Condition(tokens, 1f)];
            return new Runner(() => unet.Forward(sample, timestep, context, [], output, condition, imagePrompts: prompts),
                unet, sample, context, output, model, prompts[0], adapter, source);
        }
        catch
        {
            adapter?.Dispose();
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One ControlNet pass at the UNet's latent size, as a guided step runs it: an even batch repeats its latents
    /// (unless --distinct-latents), one picture for all, its embedding computed in the warm-up and kept.
    /// </summary>
    private static Runner ControlNetRunner(CommandLine line, UNetOptions options, int batch, int height, int width)
    {
        ModelOptions.Setup(line);
        var source = ControlNetSource.Open(line.Require("--model"));
        try
        {
            int f = source.Config.ConditioningScaleFactor;
            if (height % f != 0 || width % f != 0)
            {
                throw new UsageException($"bench: the ControlNet takes pictures in multiples of {f} pixels, got {height}x{width}");
            }
            var net = new ControlNetModel(source.Config, source.Weights, options);
            int h = height / f, w = width / f;
            Tensor sample = Latents([batch, h, w, source.Config.Encoder.InChannels], line.Has("--distinct-latents"));
            Tensor context = RandomTensor([batch, 77, source.Config.Encoder.CrossAttentionDim[0]]);
            Tensor picture = RandomPicture(height, width, source.Config.ConditioningChannels);
            ControlResiduals residuals = net.CreateResiduals(batch, h, w);
            return new Runner(() => net.Forward(sample, [999f], context, [], picture, 1f, ResidualWeighting.Uniform, residuals), residuals, net, sample, context, picture, source);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>A random [1, H, W, channels] picture in [0, 1], as the pipeline passes a control picture.</summary>
    private static Tensor RandomPicture(int height, int width, int channels)
    {
        Tensor picture = RandomTensor([1, height, width, channels]);
        Span<float> pixels = picture.Span;
        for (int i = 0; i < pixels.Length; i++) pixels[i] = 0.5f + 0.5f * pixels[i];
        return picture;
    }

    /// <summary>
    /// A T2I-Adapter's features of one H x W picture (--model: an adapter folder or file, e.g. from `sd make-random-model
    /// --like sd15-adapter`): what a generation pays once per pass, where a ControlNet pays per step.
    /// </summary>
    private static Runner AdapterRunner(CommandLine line, int batch, int height, int width)
    {
        if (batch != 1)
        {
            throw new UsageException($"bench: --part adapter runs one picture (shared by a batch), got --batch {batch}");
        }
        ModelOptions.Setup(line);
        var source = T2IAdapterSource.Open(line.Require("--model"));
        T2IAdapterModel? adapter = null;
        try
        {
            int f = source.Config.DownscaleFactor;
            if (height % f != 0 || width % f != 0)
            {
                throw new UsageException($"bench: the adapter takes pictures in multiples of {f} pixels, got {height}x{width}");
            }
            adapter = new T2IAdapterModel(source.Config, source.Weights);
            Tensor picture = RandomPicture(height, width, source.Config.InChannels);
            T2IAdapterModel model = adapter;
            return new Runner(() => model.Forward(picture, 1f).Dispose(), adapter, picture, source);
        }
        catch
        {
            adapter?.Dispose();
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// An IP-Adapter's image encoder on <paramref name="batch"/> random pictures of its size (--model: a
    /// CLIPVisionModelWithProjection folder): what a generation pays once for its picture prompts. With
    /// <paramref name="ipAdapter"/>, what that adapter takes from the encoder (image_embeds, or the penultimate hidden
    /// states) and its image projection of them.
    /// </summary>
    private static Runner ImageEncoderRunner(CommandLine line, int batch, string? ipAdapter)
    {
        ModelOptions.Setup(line);
        var source = ImageEncoderSource.Open(line.Require("--model"));
        // Freed in the reverse order of opening: the models before the files they were read from.
        var owned = new Stack<IDisposable>();
        owned.Push(source);
        try
        {
            var encoder = new ClipVisionModel(source.Config, source.Weights);
            owned.Push(encoder);
            int side = source.Config.ImageSize;
            Tensor pixels = RandomTensor([batch, side, side, 3]);
            owned.Push(pixels);
            if (ipAdapter is null)
            {
                return new Runner(() => encoder.Encode(pixels).Dispose(), [.. owned]) { FixedSide = side };
            }
            var adapterSource = IpAdapterSource.Open(ipAdapter);
            owned.Push(adapterSource);
            var adapter = new IpAdapterModel(adapterSource);
            owned.Push(adapter);
            return new Runner(() =>
            {
                using Tensor input = adapter.TakesHiddenStates ? encoder.PenultimateHiddenStates(pixels) : encoder.Encode(pixels);
                adapter.Project(input).Dispose();
            }, [.. owned]) { FixedSide = side };
        }
        catch
        {
            foreach (IDisposable d in owned) d.Dispose();
            throw;
        }
    }

    private static Runner Txt2ImgRunner(CommandLine line, UNetOptions unetOptions, int height, int width, int steps)
    {
        var pipeline = StableDiffusionPipeline.Load(line.Require("--model"), ModelOptions.OpenOptions(line), ModelOptions.Setup(line),
            new PipelineOptions { Memory = PipelineMemory.Sequential, UNet = unetOptions });
        var request = new GenerateRequest
        {
            Prompt = "a photograph of an astronaut riding a horse", Steps = steps, GuidanceScale = 7.5f,
            Scheduler = "dpm++-2m", Width = width, Height = height, Seed = 1,
        };
        string last = "";
        void Run()
        {
            using GenerateResult result = pipeline.Generate(request);
            string S(TimeSpan t) => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";
            last = $"load {S(result.Loading)}, text {S(result.TextEncoding)}, denoise {S(result.Denoising)} " +
                $"({(result.Denoising.TotalSeconds / steps).ToString("0.00", CultureInfo.InvariantCulture)} s/step), VAE decode {S(result.Decoding)}";
        }
        return new Runner(Run, pipeline) { Detail = () => last };
    }

    private static Runner UpscaleRunner(CommandLine line, int batch, int height, int width)
    {
        if (batch != 1)
        {
            throw new UsageException($"bench: --part upscale runs one picture, got --batch {batch}");
        }
        ModelOptions.Setup(line);
        var model = EsrganUpscaler.Load(line.Require("--model"));
        var picture = new byte[height * width * 3];
        new Random(7).NextBytes(picture);
        return new Runner(() => model.UpscaleOnce(picture, height, width), model);
    }

    private static Runner VaeRunner(ModelSource model, int batch, int height, int width, bool decode)
    {
        var vae = new AutoencoderKL(model.Vae ?? throw new InvalidFileException(model.Path, "the model has no VAE"), model.Weights(ModelComponent.Vae));
        int f = vae.Factor, latent = vae.Config.LatentChannels;
        Tensor latents = RandomTensor([batch, height / f, width / f, latent]);
        Tensor image = RandomTensor([batch, height, width, vae.Config.InChannels]);
        Tensor logvar = Tensor.Allocate([batch, height / f, width / f, latent]);
        Action action = decode ? () => vae.Decode(latents, image) : () => vae.Encode(image, latents, logvar);
        return new Runner(action, vae, latents, image, logvar, model);
    }

    /// <summary>
    /// Random latents [batch, h, w, c]; an even batch is cat([latents] * 2), as a guided sampling step passes them,
    /// unless <paramref name="distinct"/>.
    /// </summary>
    private static Tensor Latents(int[] shape, bool distinct)
    {
        Tensor sample = RandomTensor(shape);
        if (shape[0] % 2 == 0 && !distinct)
        {
            Span<float> all = sample.Span;
            all[..(all.Length / 2)].CopyTo(all[(all.Length / 2)..]);
        }
        return sample;
    }

    private static Tensor RandomTensor(int[] shape)
    {
        Tensor tensor = Tensor.Allocate(shape);
        var random = new Random(7);
        Span<float> span = tensor.Span;
        for (int i = 0; i < span.Length; i++) span[i] = random.NextSingle() * 2 - 1;
        return tensor;
    }

    /// <summary>VmHWM from /proc/self/status (Linux); the process working-set peak elsewhere.</summary>
    internal static long PeakRssBytes()
    {
        const string path = "/proc/self/status";
        if (File.Exists(path))
        {
            foreach (string row in File.ReadLines(path))
            {
                if (row.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    string[] parts = row.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        return Process.GetCurrentProcess().PeakWorkingSet64;
    }

    /// <summary>Timed runs per bench: plenty for a median, and a typo (1000000) cannot keep it busy for days.</summary>
    private const int MaxReps = 1000;

    private static int Positive(CommandLine line, string flag, int fallback)
    {
        int value = line.GetInt(flag, fallback);
        return value > 0 ? value : throw new UsageException($"bench: {flag} must be positive, got {value}");
    }
}
