using System.Globalization;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.IO;
using Sd.Loaders.Npy;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;
using Sd.Engine.Imaging;

namespace Sd.Cli.Commands;

/// <summary><c>sd unet</c>, <c>sd vae-decode</c>, <c>sd vae-encode</c>: one component on .npy inputs (NCHW float32).</summary>
public static class ModelCommands
{
    private const string UNetHelp = """
        Usage: sd unet --model M [--config DIR] --sample x.npy (--timestep T | --timestep-file t.npy) --context c.npy
                       [--guidance W] --out eps.npy

        One UNet forward pass. sample: float32 [B, 4, h, w]; context: float32 [B, 77, W] (encode-text output);
        the timestep is one number or a file with one per batch element (int or float). Writes [B, 4, h, w].
        --guidance conditions an LCM-distilled UNet (time_cond_proj_dim) on guidance scale W, as diffusers'
        timestep_cond = get_guidance_scale_embedding(W - 1); without it such a UNet runs unconditioned, as in diffusers.
        """;

    private const string DecodeHelp = """
        Usage: sd vae-decode --model M [--config DIR] [--vae VAE] --latents z.npy --out x.npy [--png image.png]

        VAE decoder. latents: float32 [B, 4, h, w], already divided by the scaling factor (the decoder's input).
        Writes the unclamped decoder output [B, 3, 8h, 8w]; --png also writes the first image as 8-bit RGB.
        """;

    private const string EncodeHelp = """
        Usage: sd vae-encode --model M [--config DIR] [--vae VAE] --image x.npy|img.png|img.jpg|img.webp|img.bmp --out mean.npy [--out-logvar lv.npy]

        VAE encoder. x.npy: float32 [B, 3, H, W] in [-1, 1] (the encoder's input); a PNG, JPEG, WebP or BMP (known by its
        signature, whatever its name) is read as RGB, turned upright by its EXIF orientation as diffusers' load_image
        does, and mapped from [0, 255] to [-1, 1]. H and W must be multiples of 8. Writes
        the posterior mean (and log-variance) [B, 4, H/8, W/8], unscaled (multiply by the scaling factor for diffusion
        latents).
        """;

    public static int UNet(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(UNetHelp);
            return 0;
        }
        var line = new CommandLine("unet", args, ModelOptions.With("--sample", "--timestep", "--timestep-file", "--context", "--guidance", "--out"), []);
        string outPath = line.Require("--out");
        line.CheckOutputFlags("--out");
        float[] timesteps = Timesteps(line);
        using ModelSource model = ModelOptions.Open(line);
        UNetConfig config = model.UNet ?? throw new InvalidFileException(model.Path, "the model has no UNet");
        using Tensor sample = ReadNchw(line, "--sample", config.InChannels);
        using Tensor context = ReadContext(line.Require("--context"));
        float[] condition = [];
        if (line.Has("--guidance"))
        {
            int dim = config.TimeCondProjDim
                ?? throw new UsageException("unet: --guidance conditions LCM-distilled UNets only (time_cond_proj_dim in their config); this one guides by batch");
            condition = GuidanceScaleEmbedding.Compute(line.GetFloat("--guidance", 0), dim);
        }
        using var unet = new UNet2DConditionModel(config, model.Weights(ModelComponent.Unet));
        using Tensor prediction = Tensor.Allocate([sample.Dim(0), sample.Dim(1), sample.Dim(2), unet.Config.OutChannels]);
        unet.Forward(sample, timesteps, context, prediction, condition);
        NpyTensors.WriteNhwcAsNchw(prediction, outPath);
        output.WriteLine($"wrote {outPath}: float32 [{sample.Dim(0)}, {unet.Config.OutChannels}, {sample.Dim(1)}, {sample.Dim(2)}]");
        return 0;
    }

    public static int VaeDecode(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(DecodeHelp);
            return 0;
        }
        var line = new CommandLine("vae-decode", args, ModelOptions.With("--latents", "--out", "--png"), []);
        string outPath = line.Require("--out");
        line.CheckOutputFlags("--out", "--png");
        line.CheckPngNames("--png");
        using ModelSource model = ModelOptions.Open(line);
        VaeConfig config = model.Vae ?? throw new InvalidFileException(model.Path, "the model has no VAE");
        using Tensor latents = ReadNchw(line, "--latents", config.LatentChannels);
        using var vae = new AutoencoderKL(config, model.Weights(ModelComponent.Vae));
        using Tensor image = Tensor.Allocate([latents.Dim(0), latents.Dim(1) * vae.Factor, latents.Dim(2) * vae.Factor, vae.Config.OutChannels]);
        vae.Decode(latents, image);
        using (var files = new AtomicFileSet())
        {
            NpyArray array = NpyTensors.AsNchwArray(image);
            files.Add(outPath, stream => NpyFile.Write(stream, array));
            if (line.Get("--png") is { } png)
            {
                PngImage picture = ImageConversion.ToRgb8(image, 0);
                files.Add(png, stream => PngFile.Write(stream, picture));
            }
            files.Commit();
        }
        output.WriteLine($"wrote {outPath}: float32 [{image.Dim(0)}, {image.Dim(3)}, {image.Dim(1)}, {image.Dim(2)}]");
        return 0;
    }

    public static int VaeEncode(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(EncodeHelp);
            return 0;
        }
        var line = new CommandLine("vae-encode", args, ModelOptions.With("--image", "--out", "--out-logvar"), []);
        string outPath = line.Require("--out");
        line.CheckOutputFlags("--out", "--out-logvar");
        string imagePath = line.Require("--image");
        using ModelSource model = ModelOptions.Open(line);
        VaeConfig config = model.Vae ?? throw new InvalidFileException(model.Path, "the model has no VAE");
        using Tensor image = ReadImage(line, imagePath, config.InChannels);
        using var vae = new AutoencoderKL(config, model.Weights(ModelComponent.Vae));
        int[] shape = [image.Dim(0), image.Dim(1) / vae.Factor, image.Dim(2) / vae.Factor, vae.Config.LatentChannels];
        using Tensor mean = Tensor.Allocate(shape);
        using Tensor logvar = Tensor.Allocate(shape);
        vae.Encode(image, mean, logvar);
        using (var files = new AtomicFileSet())
        {
            NpyArray meanArray = NpyTensors.AsNchwArray(mean);
            files.Add(outPath, stream => NpyFile.Write(stream, meanArray));
            if (line.Get("--out-logvar") is { } logvarPath)
            {
                NpyArray logvarArray = NpyTensors.AsNchwArray(logvar);
                files.Add(logvarPath, stream => NpyFile.Write(stream, logvarArray));
            }
            files.Commit();
        }
        output.WriteLine($"wrote {outPath}: float32 [{shape[0]}, {shape[3]}, {shape[1]}, {shape[2]}]");
        return 0;
    }

    private static float[] Timesteps(CommandLine line)
    {
        if (line.Get("--timestep") is { } text)
        {
            if (line.Has("--timestep-file"))
            {
                throw new UsageException("unet: give --timestep or --timestep-file, not both");
            }
            return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float t) && float.IsFinite(t)
                ? [t]
                : throw new UsageException($"unet: --timestep expects a number, got '{text}'");
        }
        string path = line.Get("--timestep-file") ?? throw new UsageException("unet: --timestep or --timestep-file is required");
        NpyArray array = NpyFile.Read(path);
        return array.DType is NpyDType.Float32 or NpyDType.Float16
            ? array.ToFloat32()
            : Array.ConvertAll(array.ToInt64(), v => (float)v);
    }

    /// <summary>
    /// The NCHW .npy array <paramref name="flag"/> names, as an NHWC tensor; refused naming the flag and the file
    /// unless it has the model's <paramref name="channels"/> (the engine's own check would show the NHWC shape).
    /// </summary>
    private static Tensor ReadNchw(CommandLine line, string flag, int channels)
    {
        string path = line.Require(flag);
        Tensor tensor = NpyTensors.ReadNchwAsNhwc(path);
        if (tensor.Dim(3) != channels)
        {
            int[] nchw = [tensor.Dim(0), tensor.Dim(3), tensor.Dim(1), tensor.Dim(2)];
            tensor.Dispose();
            throw new InvalidFileException(path, $"{flag} must be [N, {channels}, H, W] (NCHW) for this model, found {NpyArray.FormatShape(nchw)}");
        }
        return tensor;
    }

    /// <summary>
    /// vae-encode's input: a PNG, JPEG, WebP or BMP picture or an NCHW .npy array, told apart by the file's first bytes, whatever its name.
    /// </summary>
    private static Tensor ReadImage(CommandLine line, string path, int channels)
    {
        Span<byte> head = stackalloc byte[PictureFile.HeadBytes];
        head = head[..InputFile.ReadHead(path, "--image file", head)];
        if (PictureFile.HasSignature(head))
        {
            return ImageConversion.FromPng(PictureFile.ReadUpright(path));
        }
        if (NpyFile.HasMagic(head))
        {
            return ReadNchw(line, "--image", channels);
        }
        throw new InvalidFileException(path, "--image must be a PNG, JPEG, WebP or BMP picture or a .npy array; this file starts as none of them (other formats are not read)");
    }

    private static Tensor ReadContext(string path)
    {
        float[] values = NpyFile.ReadFloat32(path, out int[] shape);
        if (shape.Length != 3)
        {
            throw new InvalidFileException(path, $"context must be a 3-D [B, tokens, width] array, found shape {NpyArray.FormatShape(shape)}");
        }
        Tensor context = Tensor.Allocate(shape);
        values.CopyTo(context.Span);
        return context;
    }
}
