namespace Sd.Cli.Commands;

/// <summary>The folder mode of the picture commands (sd upscale, sd preprocess): A1111's "Batch from Directory".</summary>
internal static class PictureBatch
{
    /// <summary>
    /// "Batch from Directory": every file of --input-dir (not hidden ones, as shared.listfiles) in natural order, each
    /// to --output-dir/NAME.png (opts.use_original_name_batch). The output folder is made here, before any work.
    /// </summary>
    public static List<(string Input, string Output)> Jobs(CommandLine line)
    {
        if (line.Has("--image") || line.Has("--out"))
        {
            throw new UsageException($"{line.Command}: give --image and --out, or --input-dir and --output-dir, not both");
        }
        if (line.Has(PictureOutput.QualityFlag))
        {
            throw new UsageException($"{line.Command}: {PictureOutput.QualityFlag} sets a .jpg --out's quality; --output-dir gets PNG files");
        }
        string inputDir = line.Require("--input-dir"), outputDir = line.Require("--output-dir");
        if (!Directory.Exists(inputDir))
        {
            throw new UsageException($"{line.Command}: --input-dir '{inputDir}' is not a folder");
        }
        if (Path.TrimEndingDirectorySeparator(Path.GetFullPath(inputDir)) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputDir)))
        {
            throw new UsageException($"{line.Command}: --output-dir is --input-dir ('{inputDir}'): the pictures would be written over their inputs");
        }
        var names = new List<string>();
        foreach (string path in Directory.EnumerateFiles(inputDir))
        {
            string name = Path.GetFileName(path);
            if (!name.StartsWith('.')) names.Add(name);
        }
        names.Sort(NaturalOrder.Instance);
        try
        {
            Directory.CreateDirectory(outputDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new UsageException($"{line.Command}: --output-dir: {Program.Describe(e)}");
        }
        var jobs = new List<(string Input, string Output)>(names.Count);
        foreach (string name in names)
        {
            jobs.Add((Path.Combine(inputDir, name), Path.Combine(outputDir, Path.GetFileNameWithoutExtension(name) + ".png")));
        }
        if (jobs.Count > 0)
        {
            line.CheckOutputs([("--output-dir", jobs[0].Output)]); // the folder takes files
        }
        return jobs;
    }
}
