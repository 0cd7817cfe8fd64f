using System.Diagnostics;
using System.Globalization;
using Sd.Engine.Imaging;
using Sd.Engine.Upscaling;
using Sd.Loaders;
using Sd.Loaders.IO;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary><c>sd upscale</c>: AUTOMATIC1111's Extras upscale of a PNG, JPEG, WebP or BMP picture, or of a folder's ("Batch from Directory").</summary>
public static class UpscaleCommand
{
    private const string Help = """
        Usage: sd upscale --image in.png --upscaler NAME|FILE [--scale S] [--max-side N]
                          [--width W --height H [--no-crop]] [--upscaler-2 NAME|FILE --upscaler-2-visibility V]
                          [--tile 192] [--tile-overlap 8] [--threads T] --out out.png|out.jpg [--jpeg-quality 80]
               sd upscale --input-dir DIR --output-dir DIR --upscaler NAME|FILE [the same options]

        Upscales a picture as AUTOMATIC1111's Extras tab does ("Upscale"). --upscaler is Lanczos or Nearest (Pillow's
        resizes, no model) or an ESRGAN-family model file (.safetensors: Real-ESRGAN x4plus/x2plus/anime_6B and the
        compact general-x4v3/animevideov3, ESRGAN, BSRGAN and community RRDB models such as 4x-UltraSharp; pickles such
        as .pth are refused: they can run code).
        The upscaler runs up to three times until the picture covers the size, then Lanczos brings it to the size,
        whose sides A1111 floors to multiples of 8.
          --scale S      "Scale by": S times the picture (default: the model's own scale; 4 for Lanczos and Nearest,
                         A1111's default). --max-side N brings the larger side down to N if it would be larger.
          --width --height  "Scale to": by the larger of the two ratios, then centred on a black canvas of exactly
                         that size (--no-crop keeps the scaled picture as it is).
          --upscaler-2   a second upscaler run the same way, blended in with weight V (0 to 1; Pillow's Image.blend).
          --tile, --tile-overlap  a model's tiles, in input pixels (A1111's ESRGAN_tile 192 and overlap 8; 0 runs the
                         whole picture at once, in more memory).
        The input may be any PNG (palette, 16-bit and interlaced ones too), JPEG (baseline or progressive, CMYK too) or WebP (lossy, lossless, an animation's first frame), taken as
        Pillow's convert("RGB") (alpha dropped, gray repeated), as stored (A1111's run_postprocessing opens files with
        Image.open, which does not apply the EXIF orientation). The output PNG keeps the input's text entries ("parameters" last; an EXIF UserComment, a PNG's eXIf
        chunk's too, is "parameters", as A1111 reads it) and records the upscale as A1111 does ("postprocessing" and "extras":
        "Postprocess upscale by: 4, Postprocess upscaler: ..."). An --out name ending in .jpg or .jpeg writes a JPEG as
        A1111 saves one (at --jpeg-quality, 1-100, default 80), whose EXIF UserComment is that upscale record alone.
        --input-dir upscales every picture in a folder (A1111's "Batch from Directory"), in natural name order, the
        models loaded once, each to --output-dir/NAME.png under its own name (A1111's default); files that are not
        PNG, JPEG, WebP or BMP pictures (and hidden ones) are skipped with a note, and the output folder is made if missing and
        must not be the input folder.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        var line = new CommandLine("upscale", args, ["--image", "--upscaler", "--scale", "--max-side", "--width", "--height", "--upscaler-2",
            "--upscaler-2-visibility", "--tile", "--tile-overlap", "--threads", "--log-level", "--out", "--input-dir", "--output-dir",
            PictureOutput.QualityFlag], ["--no-crop"]);
        bool batch = line.Has("--input-dir") || line.Has("--output-dir");
        List<(string Input, string Output)> jobs = batch ? PictureBatch.Jobs(line) : [(line.Require("--image"), line.Require("--out"))];
        Settings settings = Read(line);
        int quality = JpegFile.DefaultQuality;
        if (!batch)
        {
            line.CheckOutputFlags("--out");
            quality = PictureOutput.Quality(line, "--out");
        }
        ModelOptions.Setup(line);
        PngImage? single = batch ? null : PictureFile.Read(jobs[0].Input); // a single picture is read before any model loads
        var models = new List<EsrganUpscaler>();
        try
        {
            Upscaler first = Open(settings.Upscaler, settings, models);
            Upscaler? second = settings.Upscaler2 is { } name2 ? Open(name2, settings, models) : null;
            var upscale = new PostprocessUpscale
            {
                Upscaler = first,
                Scale = settings.Scale ?? first.Model?.Scale ?? 4,
                MaxSideLength = settings.MaxSide, Width = settings.Width, Height = settings.Height, Crop = !line.Has("--no-crop"),
                Upscaler2 = second, Upscaler2Visibility = settings.Visibility,
            };
            int written = 0;
            foreach ((string inPath, string outPath) in jobs)
            {
                PngImage input;
                try
                {
                    input = single ?? PictureFile.Read(inPath);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // A1111's batch skips a file it cannot open as a picture.
                    output.WriteLine($"skipped {Program.Describe(e)}"); // the message names the file
                    continue;
                }
                var clock = Stopwatch.StartNew();
                UpscaledPicture result = upscale.Run(ImageConversion.RgbBytes(input), input.Height, input.Width);
                string infotext = string.Join(", ", result.Info.Select(entry => $"{entry.Key}: {Infotext.Quote(entry.Value)}"));
                var picture = new PngImage(result.Width, result.Height, 3, result.Picture, Text(input, infotext, JpegFile.IsJpegName(outPath)));
                AtomicFile.Write(outPath, stream => PictureOutput.Write(stream, outPath, picture, quality));
                output.WriteLine($"wrote {outPath}: {result.Width}x{result.Height} from {input.Width}x{input.Height} ({infotext}) in {clock.Elapsed.TotalSeconds:F1} s");
                written++;
            }
            if (batch)
            {
                output.WriteLine($"upscaled {written} of {jobs.Count} files from {line.Get("--input-dir")} into {line.Get("--output-dir")}");
            }
            return 0;
        }
        finally
        {
            models.ForEach(model => model.Dispose());
        }
    }


    private readonly record struct Settings(string Upscaler, string? Upscaler2, double? Scale, int MaxSide, int Width, int Height, double Visibility,
        int Tile, int TileOverlap);

    /// <summary>The upscalers' names, the size flags, the blend and the tiles, checked before the picture is read or a model loaded.</summary>
    private static Settings Read(CommandLine line)
    {
        string upscaler = CheckName(line, "--upscaler", line.Require("--upscaler"));
        string? upscaler2 = line.Get("--upscaler-2") is { } given ? CheckName(line, "--upscaler-2", given) : null;
        double? scale = line.Has("--scale") ? line.GetDouble("--scale", 4) : null;
        if (scale is { } s && !(s > 0 && s <= 16))
        {
            throw new UsageException($"upscale: --scale must be above 0 and at most 16, got {s.ToString(CultureInfo.InvariantCulture)}");
        }
        bool sized = line.Has("--width") || line.Has("--height");
        int width = line.GetInt("--width", 0), height = line.GetInt("--height", 0), maxSide = line.GetInt("--max-side", 0);
        if (sized && (width < 1 || height < 1))
        {
            throw new UsageException($"upscale: \"Scale to\" needs --width and --height, both above 0, got {width}x{height}");
        }
        if (sized && (scale is not null || line.Has("--max-side")))
        {
            throw new UsageException("upscale: give --scale (and --max-side) or --width and --height, not both");
        }
        if (!sized && line.Has("--no-crop"))
        {
            throw new UsageException("upscale: --no-crop goes with --width and --height");
        }
        if (maxSide < 0)
        {
            throw new UsageException($"upscale: --max-side must not be negative (0 is no limit), got {maxSide}");
        }
        double visibility = line.GetDouble("--upscaler-2-visibility", line.Has("--upscaler-2") ? -1 : 0);
        if (line.Has("--upscaler-2") != line.Has("--upscaler-2-visibility") || !(visibility >= 0 && visibility <= 1))
        {
            throw new UsageException("upscale: --upscaler-2 and --upscaler-2-visibility go together, the visibility 0 to 1");
        }
        int tile = line.GetInt("--tile", EsrganUpscaler.DefaultTileSize), overlap = line.GetInt("--tile-overlap", EsrganUpscaler.DefaultTileOverlap);
        if (tile < 0 || overlap < 0 || tile > 0 && overlap >= tile)
        {
            throw new UsageException($"upscale: --tile {tile} --tile-overlap {overlap}: the tile must be 0 (the whole picture) or more than the overlap, both not negative");
        }
        return new Settings(upscaler, upscaler2, scale, maxSide, width, height, visibility, tile, overlap);
    }

    private static string CheckName(CommandLine line, string flag, string given) =>
        given.Equals("Lanczos", StringComparison.OrdinalIgnoreCase) || given.Equals("Nearest", StringComparison.OrdinalIgnoreCase) || NamesModelFile(given) ? given
        : throw new UsageException($"{line.Command}: {flag} '{given}' is neither Lanczos nor Nearest nor an ESRGAN model file (.safetensors); A1111's None upscales nothing");

    /// <summary>An upscaler by name (Lanczos, Nearest, in any case) or an ESRGAN-family model file, loaded in the tiles given.</summary>
    private static Upscaler Open(string given, Settings settings, List<EsrganUpscaler> models)
    {
        if (given.Equals("Lanczos", StringComparison.OrdinalIgnoreCase)) return Upscaler.Lanczos;
        if (given.Equals("Nearest", StringComparison.OrdinalIgnoreCase)) return Upscaler.Nearest;
        EsrganUpscaler model = EsrganUpscaler.Load(given, settings.Tile, settings.TileOverlap);
        models.Add(model);
        return Upscaler.Of(model);
    }

    /// <summary>Whether an upscaler's name means a model file: a .safetensors or pickle name (pickles are refused when loaded), or a file that exists.</summary>
    internal static bool NamesModelFile(string given) =>
        given.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || PickleGuard.HasPickleExtension(given) || File.Exists(given);

    /// <summary>
    /// run_postprocessing's PNG text: the input's entries with "parameters" moved last (read_info_from_image pops it
    /// and sets it back), then "postprocessing" and save_image's "extras" section, both the infotext (an entry of the
    /// same name already there is replaced in its place, as in a Python dict).
    /// </summary>
    private static Dictionary<string, string> Text(PngImage input, string infotext, bool jpeg)
    {
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        if (jpeg)
        {
            // A1111 saves a .jpg with the upscale's infotext as its only parameters (EXIF's UserComment).
            text["parameters"] = infotext;
            return text;
        }
        foreach ((string key, string value) in input.Text)
        {
            if (key != "parameters") text[key] = value;
        }
        if (input.Text.TryGetValue("parameters", out string? parameters)) text["parameters"] = parameters;
        text["postprocessing"] = infotext;
        text["extras"] = infotext;
        return text;
    }
}
