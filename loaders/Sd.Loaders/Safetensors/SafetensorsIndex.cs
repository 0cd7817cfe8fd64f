using System.Text.Json;

namespace Sd.Loaders.Safetensors;

/// <summary>
/// A sharded checkpoint's <c>*.safetensors.index.json</c>: <c>{"metadata": {...}, "weight_map": {tensor: shard}}</c>.
/// Shard names must be plain file names in the index's folder (no path traversal) and every listed tensor must be
/// in the shard the index names.
/// </summary>
public static class SafetensorsIndex
{
    /// <summary>Opens every shard the index names; the caller owns (disposes) the returned files.</summary>
    public static List<SafetensorsFile> OpenShards(string indexPath)
    {
        Config.JsonConfig json = Config.JsonConfig.Load(indexPath);
        if (json.GetRaw("weight_map") is not { ValueKind: JsonValueKind.Object } weightMap)
        {
            throw new InvalidFileException(indexPath, "missing \"weight_map\" object");
        }
        string directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var opened = new List<SafetensorsFile>();
        try
        {
            foreach (JsonProperty entry in weightMap.EnumerateObject())
            {
                string shard = entry.Value.ValueKind == JsonValueKind.String
                    ? entry.Value.GetString()!
                    : throw json.Wrong($"weight_map.{entry.Name}", "a shard file name", entry.Value);
                if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                {
                    throw new InvalidFileException(indexPath, $"weight_map names shard '{shard}' for '{entry.Name}'; shards must be plain file names beside the index");
                }
                if (!shards.TryGetValue(shard, out SafetensorsFile? file))
                {
                    string shardPath = Path.Combine(directory, shard);
                    if (!File.Exists(shardPath))
                    {
                        throw new InvalidFileException(indexPath, $"shard '{shard}' (holding '{entry.Name}') does not exist");
                    }
                    file = SafetensorsFile.Open(shardPath);
                    shards.Add(shard, file);
                    opened.Add(file);
                }
                if (!file.TryGet(entry.Name, out _))
                {
                    throw new InvalidFileException(indexPath, $"weight_map puts '{entry.Name}' in '{shard}', which has no such tensor");
                }
            }
            if (opened.Count == 0)
            {
                throw new InvalidFileException(indexPath, "weight_map is empty");
            }
            return opened;
        }
        catch
        {
            foreach (SafetensorsFile file in opened)
            {
                file.Dispose();
            }
            throw;
        }
    }
}
