function init() {
  routeRegistry.registerStreamRoute("/activity");
  routeRegistry.registerRoute("GET", "/activity-feed", showActivityFeed);
  routeRegistry.registerRoute("POST", "/activity/log", logActivity);
}

function showActivityFeed(request) {
  const html = `
    <!DOCTYPE html>
    <html>
    <head>
      <title>Activity Feed</title>
      <style>
        body {
          font-family: Arial, sans-serif;
          margin: 0;
          padding: 20px;
          background: #f5f7fa;
        }
        h1 {
          text-align: center;
          color: #333;
        }
        .feed-container {
          max-width: 800px;
          margin: 0 auto;
        }
        .activity {
          background: white;
          padding: 15px 20px;
          margin: 10px 0;
          border-radius: 8px;
          box-shadow: 0 2px 4px rgba(0,0,0,0.1);
          display: flex;
          align-items: start;
          gap: 15px;
          animation: slideIn 0.3s ease-out;
        }
        @keyframes slideIn {
          from {
            transform: translateY(-20px);
            opacity: 0;
          }
          to {
            transform: translateY(0);
            opacity: 1;
          }
        }
        .activity-icon {
          width: 40px;
          height: 40px;
          border-radius: 50%;
          display: flex;
          align-items: center;
          justify-content: center;
          font-size: 1.5em;
          flex-shrink: 0;
        }
        .icon-user { background: #e3f2fd; }
        .icon-post { background: #f3e5f5; }
        .icon-comment { background: #fff3e0; }
        .icon-like { background: #ffebee; }
        .icon-share { background: #e8f5e9; }
        .activity-content {
          flex: 1;
        }
        .activity-user {
          font-weight: bold;
          color: #1976d2;
        }
        .activity-action {
          color: #666;
        }
        .activity-time {
          font-size: 0.85em;
          color: #999;
          margin-top: 5px;
        }
        .controls {
          text-align: center;
          margin: 20px 0;
        }
        button {
          background: #1976d2;
          color: white;
          border: none;
          padding: 10px 20px;
          border-radius: 4px;
          cursor: pointer;
          margin: 0 5px;
        }
        button:hover {
          background: #1565c0;
        }
      </style>
    </head>
    <body>
      <h1>üîî Live Activity Feed</h1>
      
      <div class="controls">
        <button onclick="simulateActivity('user')">Simulate User Join</button>
        <button onclick="simulateActivity('post')">Simulate Post</button>
        <button onclick="simulateActivity('comment')">Simulate Comment</button>
        <button onclick="simulateActivity('like')">Simulate Like</button>
      </div>
      
      <div class="feed-container" id="feed"></div>
      
      <script>
        const feed = document.getElementById('feed');
        const eventSource = new EventSource('/activity');
        
        const icons = {
          user: 'üë§',
          post: 'üìù',
          comment: 'üí¨',
          like: '‚ù§Ô∏è',
          share: 'üîÑ'
        };
        
        eventSource.onmessage = function(event) {
          const activity = JSON.parse(event.data);
          addActivity(activity);
        };
        
        function addActivity(activity) {
          const div = document.createElement('div');
          div.className = 'activity';
          
          const iconClass = 'icon-' + activity.type;
          const icon = icons[activity.type] || '‚Ä¢';
          
          div.innerHTML = \`
            <div class="activity-icon \${iconClass}">\${icon}</div>
            <div class="activity-content">
              <div>
                <span class="activity-user">\${activity.user}</span>
                <span class="activity-action">\${activity.action}</span>
              </div>
              <div class="activity-time">\${timeAgo(activity.timestamp)}</div>
            </div>
          \`;
          
          feed.insertBefore(div, feed.firstChild);
          
          // Keep only last 20 activities
          while (feed.children.length > 20) {
            feed.removeChild(feed.lastChild);
          }
        }
        
        function timeAgo(timestamp) {
          const seconds = Math.floor((new Date() - new Date(timestamp)) / 1000);
          
          if (seconds < 60) return 'Just now';
          if (seconds < 3600) return Math.floor(seconds / 60) + ' minutes ago';
          if (seconds < 86400) return Math.floor(seconds / 3600) + ' hours ago';
          return Math.floor(seconds / 86400) + ' days ago';
        }
        
        function simulateActivity(type) {
          const users = ['Alice', 'Bob', 'Charlie', 'Diana', 'Eve'];
          const actions = {
            user: 'joined the platform',
            post: 'created a new post',
            comment: 'commented on a post',
            like: 'liked a post',
            share: 'shared a post'
          };
          
          fetch('/activity/log', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              type: type,
              user: users[Math.floor(Math.random() * users.length)],
              action: actions[type]
            })
          });
        }
        
        // Simulate some initial activity
        setTimeout(() => simulateActivity('user'), 500);
        setTimeout(() => simulateActivity('post'), 1500);
        setTimeout(() => simulateActivity('comment'), 2500);
      </script>
    </body>
    </html>
  `;

  return {
    status: 200,
    headers: { "Content-Type": "text/html" },
    body: html,
  };
}

function logActivity(request) {
  const data = JSON.parse(request.body || "{}");

  const activity = {
    type: data.type,
    user: data.user,
    action: data.action,
    timestamp: new Date().toISOString(),
  };

  sendStreamMessage(activity);

  console.log("Activity logged", activity);

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

init();
