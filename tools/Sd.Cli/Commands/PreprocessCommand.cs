using System.Diagnostics;
using Sd.Loaders.IO;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd preprocess</c>: a ControlNet's picture made from a photograph as <c>sd generate --control-preprocessor</c>
/// makes it, to look at (and tune the thresholds) before a run, or to give as --control-image.
/// </summary>
public static class PreprocessCommand
{
    private const string Help = """
        Usage: sd preprocess --image photo.png --preprocessor canny|invert [--canny-low 100] [--canny-high 200]
                             --out edges.png|edges.jpg [--jpeg-quality 80]
               sd preprocess --input-dir DIR --output-dir DIR --preprocessor canny|invert [the thresholds]

        Makes a ControlNet's control picture from a picture (PNG, JPEG, WebP or BMP, its EXIF orientation applied, as
        sd generate reads --control-image), as sd generate --control-preprocessor does:
          canny   its edges as OpenCV's cv2.Canny(picture, low, high) on its RGB pixels (3x3 Sobel, L1 gradient), bit
                  for bit, white on black in three channels, at the picture's own size: pixels whose gradient is a
                  local maximum above --canny-low and joined to one above --canny-high (defaults 100 and 200, as
                  diffusers' canny examples and A1111's ControlNet extension; swapped if low is the larger).
          invert  255 minus each RGB value (A1111's "invert (from white bg & black line)"): black lines drawn on
                  white become the white-on-black lines lineart and scribble ControlNets take.
        --input-dir does every picture of a folder (video frames, say), in natural name order, each to
        --output-dir/NAME.png; files that are not PNG, JPEG, WebP or BMP pictures (and hidden ones) are skipped with a
        note, and the output folder is made if missing and must not be the input folder (as sd upscale's batch).
        """;

    private static readonly string[] Flags = ["--image", "--preprocessor", ControlNetOption.CannyLowFlag, ControlNetOption.CannyHighFlag, "--out", PictureOutput.QualityFlag,
        "--input-dir", "--output-dir"];

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        var line = new CommandLine("preprocess", args, Flags, []);
        string preprocessor = ControlNetOption.Preprocessor(line, "--preprocessor", line.Require("--preprocessor"));
        if (preprocessor is not (ControlNetOption.Canny or ControlNetOption.Invert))
        {
            throw new UsageException(preprocessor == ControlNetOption.None
                ? $"preprocess: --preprocessor {ControlNetOption.None} would copy the picture; give {ControlNetOption.Canny} or {ControlNetOption.Invert}"
                : $"preprocess: --preprocessor {ControlNetOption.Inpaint} makes a condition of -1 under the mask, which no picture file holds; sd generate makes it");
        }
        bool canny = preprocessor == ControlNetOption.Canny;
        if (!canny && (line.Has(ControlNetOption.CannyLowFlag) || line.Has(ControlNetOption.CannyHighFlag)))
        {
            throw new UsageException($"preprocess: {ControlNetOption.CannyLowFlag} and {ControlNetOption.CannyHighFlag} go with --preprocessor {ControlNetOption.Canny}");
        }
        double low = line.GetDouble(ControlNetOption.CannyLowFlag, Sd.Engine.Imaging.CannyEdges.DefaultLow);
        double high = line.GetDouble(ControlNetOption.CannyHighFlag, Sd.Engine.Imaging.CannyEdges.DefaultHigh);
        bool batch = line.Has("--input-dir") || line.Has("--output-dir");
        List<(string Input, string Output)> jobs = batch ? PictureBatch.Jobs(line) : [(line.Require("--image"), line.Require("--out"))];
        int quality = JpegFile.DefaultQuality;
        if (!batch)
        {
            quality = PictureOutput.Quality(line, "--out");
            line.CheckOutputFlags("--out");
        }
        int written = 0;
        foreach ((string input, string outPath) in jobs)
        {
            PngImage picture;
            try
            {
                picture = PictureFile.ReadUpright(input);
            }
            catch (Exception e) when (batch && e is IOException or UnauthorizedAccessException)
            {
                output.WriteLine($"skipped {Program.Describe(e)}"); // not a picture: the message names the file
                continue;
            }
            var clock = Stopwatch.StartNew();
            PngImage control = ControlNetOption.Preprocess(picture, preprocessor, low, high);
            double seconds = clock.Elapsed.TotalSeconds;
            AtomicFile.Write(outPath, stream => PictureOutput.Write(stream, outPath, control, quality));
            output.WriteLine(FormattableString.Invariant(
                $"wrote {outPath}: {preprocessor}{(canny ? $" (low {low}, high {high})" : "")} of {input}, {control.Width}x{control.Height}, in {seconds * 1000:F1} ms"));
            written++;
        }
        if (batch)
        {
            output.WriteLine($"preprocessed {written} of {jobs.Count} files from {line.Get("--input-dir")} into {line.Get("--output-dir")}");
        }
        return 0;
    }
}
