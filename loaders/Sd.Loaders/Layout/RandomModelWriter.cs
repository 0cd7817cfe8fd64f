using System.Runtime.InteropServices;
using System.Text;
using Sd.Loaders.Config;
using Sd.Loaders.IO;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Layout;

/// <summary>
/// Writes a diffusers model folder with the exact shapes of a real architecture and seeded random weights, for
/// benchmarks at real scale on machines without real weights. Weights are uniform with the variance of PyTorch's
/// default initialization (std 1/sqrt(fan_in)), norm scales 1 and biases small, so activations stay finite through
/// the network. The weights are random: the images are noise. The built-in demo model
/// (<see cref="DemoModel"/>) draws its weights the same way, written to memory.
/// </summary>
public static class RandomModelWriter
{
    /// <summary>
    /// Writes the SD 1.5 folder (no tokenizer: real tokenizer files are not ours to ship). The folder must be new or
    /// empty: a model is never overwritten. The model is built in a temporary folder (beside a new folder, inside an
    /// empty one, so an empty mount point or a link to a folder is written through) and moved into place when whole,
    /// so a failure (a full disk) or an interrupt leaves no half-written model.
    /// </summary>
    /// <exception cref="IOException"><paramref name="directory"/> is a file or a folder that is not empty.</exception>
    public static long WriteSd15(string directory, TensorDType dtype, ulong seed, TextWriter? log = null) =>
        WriteFolder(directory, dtype, "model_index.json", temp =>
        {
            WriteText(Path.Combine(temp, "model_index.json"), Sd15.ModelIndexJson);
            WriteText(Path.Combine(temp, "scheduler", "scheduler_config.json"), Sd15.SchedulerJson);
            long total = 0;
            total += Component(temp, "unet", "diffusion_pytorch_model.safetensors", Sd15.UNetJson, DiffusersLayout.UNet(Sd15.UNet), dtype, seed, log);
            total += Component(temp, "vae", "diffusion_pytorch_model.safetensors", Sd15.VaeJson, DiffusersLayout.Vae(Sd15.Vae), dtype, seed + 1, log);
            total += Component(temp, "text_encoder", "model.safetensors", Sd15.TextEncoderJson, DiffusersLayout.ClipText(Sd15.TextEncoder), dtype, seed + 2, log);
            return total;
        });

    /// <summary>
    /// Writes an SD 1.5 ControlNet folder (config.json and diffusion_pytorch_model.safetensors) the same way as
    /// <see cref="WriteSd15"/>: a new or empty folder, filled only when whole.
    /// </summary>
    public static long WriteSd15ControlNet(string directory, TensorDType dtype, ulong seed, TextWriter? log = null) =>
        WriteFolder(directory, dtype, "diffusion_pytorch_model.safetensors",
            temp => Component(temp, ".", "diffusion_pytorch_model.safetensors", Sd15.ControlNetJson, DiffusersLayout.ControlNet(Sd15.ControlNet), dtype, seed, log));

    /// <summary>An SD 1.5 T2I-Adapter folder (config.json and diffusion_pytorch_model.safetensors), written as <see cref="WriteSd15ControlNet"/>.</summary>
    public static long WriteSd15Adapter(string directory, TensorDType dtype, ulong seed, TextWriter? log = null) =>
        WriteFolder(directory, dtype, "diffusion_pytorch_model.safetensors",
            temp => Component(temp, ".", "diffusion_pytorch_model.safetensors", Sd15.T2IAdapterJson, DiffusersLayout.T2IAdapter(Sd15.T2IAdapter), dtype, seed, log));

    /// <summary>
    /// An SD 1.5 IP-Adapter as h94/IP-Adapter's models folder holds one: the IP-Adapter file (<see cref="IpAdapterFile"/>) and the
    /// image_encoder folder beside it, written as <see cref="WriteSd15ControlNet"/>.
    /// </summary>
    public static long WriteSd15IpAdapter(string directory, ImageProjectionKind kind, TensorDType dtype, ulong seed, TextWriter? log = null)
    {
        string file = IpAdapterFile(kind);
        return WriteFolder(directory, dtype, file, temp =>
        {
            long encoder = Component(temp, "image_encoder", "model.safetensors", Sd15.ImageEncoderJson, DiffusersLayout.ClipVision(Sd15.ImageEncoder), dtype, seed, log);
            List<ParameterSpec> adapter = Sd15.IpAdapter(kind);
            Weights(adapter, dtype, seed + 1).Save(Path.Combine(temp, file));
            long parameters = adapter.Sum(p => p.ElementCount);
            log?.WriteLine($"  {parameters:N0} parameters ({file})");
            return encoder + parameters;
        });
    }

    /// <summary>The IP-Adapter file <see cref="WriteSd15IpAdapter"/> writes: h94's name for that kind.</summary>
    public static string IpAdapterFile(ImageProjectionKind kind) => kind switch
    {
        ImageProjectionKind.Resampler => "ip-adapter-plus_sd15.safetensors",
        ImageProjectionKind.Mlp => "ip-adapter-full-face_sd15.safetensors",
        _ => "ip-adapter_sd15.safetensors",
    };

    /// <summary>
    /// Fills a temporary folder and moves it into place: renamed as a whole to a new folder, or, into an empty one,
    /// entry by entry with <paramref name="lastFile"/> last (a folder without it is not taken for a model).
    /// </summary>
    private static long WriteFolder(string directory, TensorDType dtype, string lastFile, Func<string, long> fill)
    {
        RequireFloat(dtype);
        string target = CheckNewFolder(directory);
        bool exists = Directory.Exists(target);
        string temp = exists ? AtomicFile.TemporaryBeside(Path.Combine(target, "model")) : AtomicFile.TemporaryBeside(target);
        AtomicFile.Track(temp, isFolder: true);
        try
        {
            long total = fill(temp);
            if (exists)
            {
                foreach (string child in Directory.GetDirectories(temp))
                {
                    Directory.Move(child, Path.Combine(target, Path.GetFileName(child)));
                }
                foreach (string file in Directory.GetFiles(temp))
                {
                    if (Path.GetFileName(file) != lastFile) File.Move(file, Path.Combine(target, Path.GetFileName(file)));
                }
                File.Move(Path.Combine(temp, lastFile), Path.Combine(target, lastFile));
            }
            else
            {
                Directory.Move(temp, target);
            }
            return total;
        }
        finally
        {
            AtomicFile.TryDeleteFolder(temp); // gone (or empty) after the moves
            AtomicFile.Untrack(temp);
        }
    }

    /// <summary>The full path of a model folder to create: absent or an empty folder, in a folder that exists.</summary>
    public static string CheckNewFolder(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string target = Path.GetFullPath(Path.TrimEndingDirectorySeparator(directory));
        if (File.Exists(target))
        {
            throw new IOException($"{directory} is a file; a new model folder was expected");
        }
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            throw new IOException($"{directory} is not empty; a model is written to a new or empty folder, never over one");
        }
        if (!Directory.Exists(Path.GetDirectoryName(target)))
        {
            throw new DirectoryNotFoundException($"{directory}: the folder {Path.GetDirectoryName(target)} does not exist");
        }
        return target;
    }

    /// <summary>
    /// Every parameter of <paramref name="layout"/> as seeded random weights, ready to save or to open in memory. A
    /// tensor's values depend only on the seed and its name, and are generated as the file is written, so a
    /// multi-gigabyte model never sits in memory twice.
    /// </summary>
    public static SafetensorsWriter Weights(IReadOnlyList<ParameterSpec> layout, TensorDType dtype, ulong seed)
    {
        RequireFloat(dtype);
        var writer = new SafetensorsWriter();
        foreach (ParameterSpec spec in layout)
        {
            ParameterSpec p = spec;
            ulong tensorSeed = seed * 0x9E3779B97F4A7C15UL ^ Fnv1a(p.Name);
            writer.AddGenerated(p.Name, dtype, p.Shape, bytes => Fill(p, dtype, tensorSeed, bytes));
        }
        return writer;
    }

    private static void RequireFloat(TensorDType dtype)
    {
        if (dtype is not (TensorDType.F32 or TensorDType.F16 or TensorDType.BF16))
        {
            throw new ArgumentException($"random weights can be F32, F16 or BF16, not {dtype.Name()}", nameof(dtype));
        }
    }

    private static long Component(string root, string folder, string fileName, string configJson, List<ParameterSpec> layout,
        TensorDType dtype, ulong seed, TextWriter? log)
    {
        string directory = Path.Combine(root, folder);
        WriteText(Path.Combine(directory, "config.json"), configJson);
        Weights(layout, dtype, seed).Save(Path.Combine(directory, fileName));
        long parameters = layout.Sum(p => p.ElementCount);
        log?.WriteLine(folder == "." ? $"  {parameters:N0} parameters ({fileName})" : $"  {folder}: {parameters:N0} parameters ({folder}/{fileName})");
        return parameters;
    }

    private static void Fill(ParameterSpec spec, TensorDType dtype, ulong seed, Span<byte> bytes)
    {
        // In these architectures the only 1-D ".weight" tensors are GroupNorm / LayerNorm scales.
        bool normScale = spec.Shape.Length == 1 && spec.Name.EndsWith(".weight", StringComparison.Ordinal);
        float center = normScale ? 1f : 0f;
        float range = spec.FanIn > 0 ? MathF.Sqrt(3f / spec.FanIn) : normScale ? 0.1f : 0.02f;
        ulong state = seed | 1;
        long count = spec.ElementCount;
        Span<float> f32 = dtype == TensorDType.F32 ? MemoryMarshal.Cast<byte, float>(bytes) : default;
        Span<ushort> u16 = dtype == TensorDType.F32 ? default : MemoryMarshal.Cast<byte, ushort>(bytes);
        for (long i = 0; i < count; i++)
        {
            // xorshift64*: fast, seeded, and plenty for weights nobody trains.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            float uniform = ((state * 0x2545F4914F6CDD1DUL) >> 40) * (1f / (1 << 24)) * 2f - 1f;
            float value = center + range * uniform;
            switch (dtype)
            {
                case TensorDType.F32:
                    f32[(int)i] = value;
                    break;
                case TensorDType.F16:
                    u16[(int)i] = BitConverter.HalfToUInt16Bits((Half)value);
                    break;
                default:
                    u16[(int)i] = (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);
                    break;
            }
        }
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in text)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }
        return hash;
    }

    private static void WriteText(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.Write(path, stream => stream.Write(Encoding.UTF8.GetBytes(text)));
    }
}
