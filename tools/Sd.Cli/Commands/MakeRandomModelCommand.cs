using Sd.Loaders;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Cli.Commands;

/// <summary><c>sd make-random-model --like sd15|sd15-controlnet|sd15-adapter|sd15-ip-adapter[-plus|-full-face] --out DIR [--dtype f32|f16|bf16] [--seed N]</c>.</summary>
public static class MakeRandomModelCommand
{
    private const string Help = """
        Usage: sd make-random-model --like sd15|sd15-controlnet|sd15-adapter|sd15-ip-adapter[-plus|-full-face] --out DIR [--dtype f32|f16|bf16] [--seed N]

        Writes a diffusers model folder with the exact Stable Diffusion 1.5 shapes (UNet 860M, VAE 84M, text
        encoder 123M parameters) and seeded RANDOM weights, for benchmarks at real scale without real weights.
        The images it produces are noise. It has no tokenizer: pass token ids, or --tokenizer DIR.
        --like sd15-controlnet writes an SD 1.5 ControlNet folder instead (361M parameters, the shapes of
        lllyasviel/sd-controlnet-canny), for `sd bench --part controlnet` and `sd generate --controlnet`;
        --like sd15-adapter an SD 1.5 T2I-Adapter folder (77M parameters, the shapes of
        TencentARC/t2iadapter_canny_sd15v2), for `sd bench --part adapter` and `sd generate --adapter`;
        --like sd15-ip-adapter an SD 1.5 IP-Adapter as h94/IP-Adapter's models folder holds it
        (ip-adapter_sd15.safetensors, 22M parameters, and image_encoder/, a 632M-parameter ViT-H/14), for
        `sd bench --part image-encoder` and `sd generate --ip-adapter DIR/ip-adapter_sd15.safetensors`;
        --like sd15-ip-adapter-plus the same with ip-adapter-plus_sd15.safetensors (49M parameters: a
        Resampler over the encoder's penultimate hidden states, 16 tokens) and --like sd15-ip-adapter-full-face
        with ip-adapter-full-face_sd15.safetensors (22M parameters: an MLP, 257 tokens).
        DIR must be new or empty (a model is never overwritten); the folder appears only when whole.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        var line = new CommandLine("make-random-model", args, ["--like", "--out", "--dtype", "--seed"], []);
        string like = line.Require("--like");
        if (like is not ("sd15" or "sd15-controlnet" or "sd15-adapter" or "sd15-ip-adapter" or "sd15-ip-adapter-plus" or "sd15-ip-adapter-full-face"))
        {
            throw new UsageException($"make-random-model: --like '{like}' is not known (supported: sd15, sd15-controlnet, sd15-adapter, sd15-ip-adapter, sd15-ip-adapter-plus, sd15-ip-adapter-full-face)");
        }
        TensorDType dtype = (line.Get("--dtype") ?? "f32").ToLowerInvariant() switch
        {
            "f32" or "fp32" => TensorDType.F32,
            "f16" or "fp16" => TensorDType.F16,
            "bf16" => TensorDType.BF16,
            string other => throw new UsageException($"make-random-model: --dtype '{other}' is not one of f32, f16, bf16"),
        };
        ulong seed = line.Get("--seed") is { } text
            ? ulong.TryParse(text, out ulong s) ? s : throw new UsageException($"make-random-model: --seed expects a non-negative integer, got '{text}'")
            : 0;
        string directory = line.Require("--out");
        try
        {
            RandomModelWriter.CheckNewFolder(directory);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            throw new UsageException($"make-random-model: --out: {Program.Describe(e)}");
        }
        string kind = like switch { "sd15-controlnet" => "ControlNet", "sd15-adapter" => "T2I-Adapter", "sd15-ip-adapter" => "IP-Adapter", "sd15-ip-adapter-plus" => "IP-Adapter Plus",
            "sd15-ip-adapter-full-face" => "full-face IP-Adapter", _ => "model" };
        output.WriteLine($"writing an SD 1.5-shaped {kind} with RANDOM {dtype.Name()} weights (seed {seed}) to {directory}:");
        long parameters = like switch
        {
            "sd15-controlnet" => RandomModelWriter.WriteSd15ControlNet(directory, dtype, seed, output),
            "sd15-adapter" => RandomModelWriter.WriteSd15Adapter(directory, dtype, seed, output),
            "sd15-ip-adapter" => RandomModelWriter.WriteSd15IpAdapter(directory, ImageProjectionKind.Linear, dtype, seed, output),
            "sd15-ip-adapter-plus" => RandomModelWriter.WriteSd15IpAdapter(directory, ImageProjectionKind.Resampler, dtype, seed, output),
            "sd15-ip-adapter-full-face" => RandomModelWriter.WriteSd15IpAdapter(directory, ImageProjectionKind.Mlp, dtype, seed, output),
            _ => RandomModelWriter.WriteSd15(directory, dtype, seed, output),
        };
        output.WriteLine($"done: {parameters:N0} parameters. These weights are random: generated images are noise.");
        return 0;
    }
}
